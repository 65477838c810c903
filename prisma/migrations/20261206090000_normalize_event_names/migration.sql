-- Event names are matched in any case: ingest stores a postback's event in its one, lower-case
-- form, so existing conversions take that form too. Where several conversions of one advertiser
-- and order hold one event name in different cases, only one can: the one already in lower case,
-- else the oldest (so later postbacks for that order find it). The others are left as they are
-- and listed (NOTICE: in the migrate output and in _prisma_migrations.logs) for a person to
-- resolve; README, "Upgrading".
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
        WHERE o.advertiser_id = c.advertiser_id AND o.order_id = c.order_id AND lower(o.event) = lower(c.event)
          AND (o.event = lower(o.event) OR o.id < c.id));
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
      RAISE NOTICE 'event name collision: advertiser %, order %, event %: conversions % (new postbacks go to the one in lower case)',
        collision.advertiser_id, collision.order_id, collision.event, collision.conversions;
    END IF;
  END LOOP;
  IF listed > 100 THEN
    RAISE NOTICE '% event name collisions in all (the first 100 are listed above)', listed;
  END IF;
END $$;
