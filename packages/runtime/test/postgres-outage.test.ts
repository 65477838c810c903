// Which job failures a worker folds into its "postgres unavailable" lines: PostgreSQL's own, not
// Redis's look-alikes (both refuse connections with ECONNREFUSED).
import { reachingPostgres } from '../src/context';

const refused = (address: string) => Object.assign(new Error(`connect ECONNREFUSED ${address}`), { code: 'ECONNREFUSED' });
const concerns = reachingPostgres('postgresql://postgres@127.0.0.1:5432/trackway');

it.each([
  ['a refused connection to its port', refused('127.0.0.1:5432'), true],
  ["a refused connection to Redis's port", refused('127.0.0.1:6379'), false],
  ['a port that only starts like its port', refused('127.0.0.1:54321'), false],
  ["Prisma's can't-reach code", Object.assign(new Error("Can't reach database server"), { code: 'P1001' }), true],
  ["Prisma's pool timeout", Object.assign(new Error('Timed out fetching a new connection'), { code: 'P2024' }), true],
  ["Prisma's bad credentials (not an outage)", Object.assign(new Error('Authentication failed'), { code: 'P1000' }), false],
  ["Prisma's missing database (not an outage)", Object.assign(new Error('Database does not exist'), { code: 'P1003' }), false],
  ["pg-pool's connect timeout", new Error('timeout exceeded when trying to connect'), true],
  ['a dropped connection', new Error('Connection terminated unexpectedly'), true],
  ['any other error', new Error('duplicate key value violates unique constraint'), false],
  ['not an error', undefined, false],
])('%s: %p', (_what, error, expected) => {
  expect(concerns(error)).toBe(expected);
});

it('reads the port from the URL (5432 when it names none)', () => {
  expect(reachingPostgres('postgresql://db.internal/trackway')(refused('10.0.0.5:5432'))).toBe(true);
  expect(reachingPostgres('postgresql://postgres@127.0.0.1:25432/trackway')(refused('127.0.0.1:25432'))).toBe(true);
  expect(reachingPostgres('postgresql://postgres@127.0.0.1:25432/trackway')(refused('127.0.0.1:5432'))).toBe(false);
});
