// The pure parts of `pnpm chaos` (scripts/chaos/): the plan of postbacks, how a receiver's log is
// judged, and how a connection is traced to the process that holds it.
import { spawn } from 'node:child_process';
import net from 'node:net';
import { type Received, analyseDeliveries } from '../scripts/chaos/receivers';
import { createSenderIndex, socketInode, socketOwner } from '../scripts/chaos/senders';
import { planPostbacks, seeded } from '../scripts/chaos/traffic';

describe('planPostbacks', () => {
  const plan = planPostbacks(5_000, 2, seeded(7), (a) => `click-${a}-${Math.random()}`);
  const share = (kind: string) => plan.filter((p) => p.kind === kind).length / plan.length;

  it('mixes about 10 % duplicates and 5 % status changes into new orders', () => {
    expect(share('duplicate')).toBeGreaterThan(0.08);
    expect(share('duplicate')).toBeLessThan(0.12);
    expect(share('status_change')).toBeGreaterThan(0.035);
    expect(share('status_change')).toBeLessThan(0.065);
    expect(plan.map((p) => p.seq)).toEqual(plan.map((_, i) => i));
  });

  it('repeats an earlier postback exactly, changes an order only along the status machine', () => {
    const key = (p: (typeof plan)[number]) => `${p.advertiser}/${p.orderId}/${p.event}`;
    const status = new Map<string, string>();
    const allowed: Record<string, string[]> = { pending: ['approved', 'rejected'], approved: ['rejected'], rejected: [] };
    for (const p of plan) {
      if (p.kind === 'new') {
        expect(status.has(key(p))).toBe(false);
        status.set(key(p), p.status);
      } else if (p.kind === 'status_change') {
        expect(allowed[status.get(key(p))!]).toContain(p.status);
        status.set(key(p), p.status);
      } else {
        expect(plan.some((q) => q.seq < p.seq && key(q) === key(p) && q.status === p.status && q.clickId === p.clickId && q.amount === p.amount)).toBe(true);
      }
    }
  });

  it('plans the same postbacks from the same seed', () => {
    const again = planPostbacks(5_000, 2, seeded(7), (a) => `click-${a}`);
    expect(again.map((p) => [p.kind, p.orderId, p.status])).toEqual(plan.map((p) => [p.kind, p.orderId, p.status]));
  });
});

describe('analyseDeliveries', () => {
  const r = (id: string, at: number, status: number, sender?: number): Received => ({ id, at, status, sender, signed: true, bodyHash: 'h' });
  const kills = [{ at: 150, pid: 2, service: 'delivery' }];

  it('allows a repeat after a non-2xx, or after a 2xx whose sender was killed before the repeat', () => {
    const a = analyseDeliveries([r('e1', 10, 500, 1), r('e1', 20, 200, 1), r('e2', 100, 200, 2), r('e2', 200, 200, 1)], kills);
    expect(a).toMatchObject({ requests: 4, answered500: 1, repeatsAfterFailure: 1, repeatsAfterKill: 1, unexplained: [] });
    expect([...a.delivered].sort()).toEqual(['e1', 'e2']);
    expect(a.byId.get('e2')).toMatchObject({ afterSuccess: 1, killedSenders: 1 });
    expect(a.byId.get('e1')).toMatchObject({ afterSuccess: 0, killedSenders: 0 });
  });

  it('reads a request of a killed sender after the kill (the run lags behind a burst) as sent before it', () => {
    const a = analyseDeliveries([r('e3', 160, 200, 2), r('e3', 300, 200, 1)], kills);
    expect(a).toMatchObject({ repeatsAfterKill: 1, unexplained: [] });
  });

  it('flags a repeat after a 2xx whose sender was not killed, or was killed only after the repeat', () => {
    const a = analyseDeliveries([r('e1', 100, 200, 1), r('e1', 200, 200, 2), r('e2', 100, 200, 2), r('e2', 120, 200, 2)], kills);
    expect(a.unexplained.map((u) => u.id)).toEqual(['e1', 'e2']);
  });

  it('takes an untraced sender for one killed shortly before the request was read; notes changed bodies', () => {
    const log = [r('e1', 200, 200), r('e1', 300, 200, 1), { ...r('e1', 400, 500, 1), bodyHash: 'other' }, r('e2', 6_000, 200), r('e2', 6_100, 200, 1)];
    const a = analyseDeliveries(log, [...kills, { at: 250, pid: 9, service: 'attribution' }]);
    expect(a).toMatchObject({ repeatsAfterKill: 1, untraced: 2, changedBodies: ['e1'] });
    expect(a.unexplained.map((u) => [u.id, u.repeat.at])).toEqual([
      ['e1', 400],
      ['e2', 6_100],
    ]);
  });
});

describe('tracing a connection to its process', () => {
  it('reads the socket inode of a (local port, remote port) pair from /proc/net/tcp text', () => {
    const table = [
      '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
      '   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1111 1 0 100 0 0 10 0',
      '   1: 0100007F:C350 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 2222 1 0 20 4 30 10 -1',
      '   2: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 3333 1 0 20 4 30 10 -1',
    ].join('\n');
    expect(socketInode(table, 50_000, 8080)).toBe('2222');
    expect(socketInode(table, 8080, 50_000)).toBe('3333');
    expect(socketInode(table, 50_001, 8080)).toBeUndefined();
  });

  it('finds the child process that holds a connection to a local server', async () => {
    const ports: number[] = [];
    const server = net.createServer((socket) => ports.push(socket.remotePort!));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    const child = spawn(process.execPath, ['-e', `require('net').connect(${port}, '127.0.0.1'); setTimeout(() => {}, 30000)`], { stdio: 'ignore' });
    try {
      while (ports.length === 0) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(socketOwner(ports[0], port, [process.pid, child.pid!])).toBe(child.pid);
      const index = createSenderIndex(() => [child.pid!]);
      expect(index.lookup(ports[0], port)).toBe(child.pid);
      index.forget(child.pid!);
      expect(index.lookup(ports[0] + 1, port)).toBeUndefined();
    } finally {
      child.kill('SIGKILL');
      server.close();
    }
  });
});
