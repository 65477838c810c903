// withClient (packages/db/src/sql.ts): a client held from the pool whose connection is lost while
// it sits idle is no uncaught exception, and does not go back to the pool.
import { TEST_DATABASE_URL } from '@trackway/testing';
import pg from 'pg';
import { inTransaction, withClient } from '../src';

let pool: pg.Pool;
beforeAll(() => {
  pool = new pg.Pool({ connectionString: TEST_DATABASE_URL, max: 2 });
});
afterAll(() => pool.end());

const terminate = (pid: number) => pool.query('SELECT pg_terminate_backend($1)', [pid]);

it('a held client whose connection is lost while idle is dropped, and nothing is thrown', async () => {
  await withClient(pool, async (client) => {
    const pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
    const ended = new Promise((resolve) => client.once('end', resolve));
    await terminate(pid);
    // Idle: the loss arrives as the client's 'error' event, then 'end' (an uncaught exception
    // without withClient's listener).
    await ended;
  });
  expect(pool.totalCount).toBe(1); // the terminating query's client only
  expect((await pool.query<{ one: number }>('SELECT 1 AS one')).rows[0].one).toBe(1);
});

it('inTransaction runs on it: a transaction whose connection is lost rejects, and the pool goes on', async () => {
  await expect(
    inTransaction(pool, async (tx) => {
      const pid = (await tx.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
      await terminate(pid);
      await tx.query('SELECT pg_sleep(0.2)');
    }),
  ).rejects.toThrow();
  expect((await pool.query<{ one: number }>('SELECT 1 AS one')).rows[0].one).toBe(1);
});
