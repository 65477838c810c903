// `pnpm reports:rebuild [--from DATE] [--to DATE] [--zone ZONE]… [--drop-zone ZONE]…`: report rows
// recomputed from the raw clicks and conversions (docs/reports.md), one UTC day per transaction,
// safe while traffic flows (writers wait for each day's transaction, then add what they committed
// after it). --zone keeps day rows for another zone from now on and builds its past; --drop-zone
// removes one. Click counts before the oldest stored click are kept.
import { parseArgs } from 'node:util';
import { commonEnvSchema, loadConfig, loadDotEnv } from '@trackway/config';
import { createDatabase } from '@trackway/db';
import { isTimeZone } from '@trackway/domain';
import { addReportZone, dropReportZone, rebuildReports } from '@trackway/ledger';

const USAGE = 'usage: pnpm reports:rebuild [--from 2026-01-01] [--to 2026-02-01] [--zone Europe/Berlin]… [--drop-zone Europe/Berlin]…';

function dateArg(name: string, value: string | undefined): Date | undefined {
  if (value === undefined) return undefined;
  const at = new Date(/^\d{4}-\d{2}-\d{2}$/.test(value) ? `${value}T00:00:00Z` : value);
  if (Number.isNaN(at.getTime())) throw new Error(`--${name} ${value} is not a date (2026-01-01) or an ISO 8601 date-time\n${USAGE}`);
  return at;
}

async function main() {
  const { values } = parseArgs({
    options: {
      from: { type: 'string' },
      to: { type: 'string' },
      zone: { type: 'string', multiple: true, default: [] },
      'drop-zone': { type: 'string', multiple: true, default: [] },
    },
    strict: true,
  });
  for (const zone of [...values.zone, ...values['drop-zone']])
    if (!isTimeZone(zone)) throw new Error(`${zone} is not an IANA time zone (e.g. Europe/Berlin)\n${USAGE}`);
  const from = dateArg('from', values.from);
  const to = dateArg('to', values.to);
  loadDotEnv();
  const { pool, prisma } = createDatabase(loadConfig({ schema: commonEnvSchema }).DATABASE_URL, { poolSize: 2 });
  const progress = (what: string) => (day: Date, done: number, of: number) => {
    if (done === of || done % 10 === 0) console.log(`${what}: ${day.toISOString().slice(0, 10)} (${done}/${of})`);
  };
  try {
    for (const zone of values['drop-zone']) console.log((await dropReportZone(pool, zone)) ? `dropped zone ${zone}` : `zone ${zone} was not kept`);
    for (const zone of values.zone) {
      await addReportZone(pool, zone, progress(`zone ${zone}`));
      console.log(`zone ${zone}: day rows kept and built`);
    }
    if ((values.zone.length === 0 && values['drop-zone'].length === 0) || from || to) {
      const started = Date.now();
      const done = await rebuildReports(pool, { from, to, progress: progress('rebuilt') });
      console.log(
        `report rows rebuilt from the raw rows for ${done.days} day(s), ${done.from.toISOString().slice(0, 10)} to ${done.to.toISOString().slice(0, 10)} (exclusive), in ${((Date.now() - started) / 1000).toFixed(1)} s`,
      );
    }
  } finally {
    await prisma.$disconnect();
    await pool.end().catch(() => undefined);
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
