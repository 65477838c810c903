-- Custom endpoint headers carry receivers' credentials (Authorization, API keys): their values
-- are now sealed one by one (AES-256-GCM under SECRETS_KEY, like signing secrets) in
-- "sealed_headers", with the names in clear so reads can show them masked. SECRETS_KEY is not
-- in the database, so SQL cannot seal: the api seals the rows still holding plaintext in
-- "headers" when it starts (sealPlaintextHeaders, packages/ledger) and empties that column; the
-- delivery worker sends either meanwhile. A later migration drops "headers".

-- AlterTable
ALTER TABLE "webhook_endpoints" ADD COLUMN     "sealed_headers" JSONB NOT NULL DEFAULT '{}';
