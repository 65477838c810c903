-- Event names are matched in any case: ingest stores a postback's event in its one, lower-case
-- form, so existing conversions take that form too, except where another conversion of the same
-- advertiser and order already holds it in another case (the two would collide on the unique
-- key). Those are left as they are and listed (NOTICE: in the migrate output and in
-- _prisma_migrations.logs) for a person to resolve; README, "Upgrading".
DO $$
DECLARE
  collision record;
  listed int := 0;
  normalized int;
BEGIN
  UPDATE conversions c SET event = lower(c.event)
   WHERE c.event <> lower(c.event)
     AND NOT EXISTS (
       SELECT 1 FROM conversions o
        WHERE o.advertiser_id = c.advertiser_id AND o.order_id = c.order_id AND lower(o.event) = lower(c.event) AND o.id <> c.id);
  GET DIAGNOSTICS normalized = ROW_COUNT;
  IF normalized > 0 THEN
    RAISE NOTICE '% conversion event name(s) written in lower case', normalized;
  END IF;
  FOR collision IN
    SELECT advertiser_id, replace(order_id, chr(31), '') AS order_id, lower(event) AS event,
           string_agg(id || ' (' || event || ')', ', ' ORDER BY id) AS conversions
      FROM conversions
     GROUP BY advertiser_id, order_id, lower(event)
    HAVING count(*) > 1
     ORDER BY advertiser_id, order_id, lower(event)
  LOOP
    listed := listed + 1;
    IF listed <= 100 THEN
      RAISE NOTICE 'event name collision left as it is: advertiser %, order %, event %: conversions %',
        collision.advertiser_id, collision.order_id, collision.event, collision.conversions;
    END IF;
  END LOOP;
  IF listed > 100 THEN
    RAISE NOTICE '% event name collisions in all (the first 100 are listed above)', listed;
  END IF;
END $$;
