-- Parameters kept as sent, before ingest redacted an advertiser's secrets from them, may hold a
-- postback key or signing secret (sent as `api_key=pk_…`, say): every JSON string shaped like one
-- (pk_… or whsec_…, whosever it is) is replaced by "[redacted]", as ingest does now. A key that
-- was sent this way has been stored in the clear: rotate it (README, "Upgrading").
DO $$
DECLARE
  redacted int;
BEGIN
  UPDATE postbacks
     SET ignored_params = regexp_replace(
           ignored_params::text,
           '"(?:[^"\\]|\\.)*(?:pk|whsec)_[A-Za-z0-9+/_=-]{12,}(?:[^"\\]|\\.)*"',
           '"[redacted]"',
           'g')::jsonb
   WHERE ignored_params::text ~ '(?:pk|whsec)_[A-Za-z0-9+/_=-]{12,}';
  GET DIAGNOSTICS redacted = ROW_COUNT;
  IF redacted > 0 THEN
    RAISE NOTICE '% postback(s) kept a value shaped like a postback key or signing secret: redacted; rotate the keys of their advertisers', redacted;
  END IF;
END $$;
