-- Issue 17: a delivery's first attempt may travel in a job that carries several deliveries of one
-- endpoint (a batch). The row names that job, so the sweeper and the API find it (a delivery whose
-- batch job is still queued has a live job). NULL: its first send is the job <event id>-<endpoint id>.
-- A nullable column without a default: added without rewriting the table.
ALTER TABLE "deliveries" ADD COLUMN "batch_job_id" VARCHAR(80);
