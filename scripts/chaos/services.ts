// The services as child processes (as `pnpm start` runs them), each supervised: killed with
// SIGKILL on request and started again at once, as a process manager would; one that exits by
// itself is noted and started again too. Every process's output goes to a log file of its own.
import fs from 'node:fs';
import path from 'node:path';
import { type ServiceProcess, spawnService } from '../../test/support/processes';

import type { ServiceName } from '@trackway/config';

export interface Kill {
  at: number;
  name: string;
  pid: number;
  /** When the process started in its place was running again (its "worker running" line). */
  readyAt?: number;
}

export interface UnexpectedExit {
  at: number;
  name: string;
  pid: number;
  code: number | string;
  tail: string;
}

const READY: Record<ServiceName, RegExp> = {
  ingest: /ingest listening/,
  api: /api listening/,
  attribution: /attribution worker running/,
  delivery: /delivery worker running/,
};

export class Supervised {
  current!: ServiceProcess;
  /** Every pid this slot has had, in order. */
  readonly pids: number[] = [];
  private generation = 0;
  private stopping = false;

  constructor(
    readonly name: string,
    readonly service: ServiceName,
    private readonly env: Record<string, string>,
    private readonly logDir: string,
    private readonly onUnexpectedExit: (exit: UnexpectedExit) => void,
  ) {}

  /** Starts the process; resolves once it says it is running. */
  start(): Promise<void> {
    const generation = ++this.generation;
    const proc = spawnService(this.service, this.env);
    this.current = proc;
    this.pids.push(proc.child.pid!);
    const log = fs.createWriteStream(path.join(this.logDir, `${this.name}.log`), { flags: 'a' });
    proc.child.stdout!.pipe(log);
    proc.child.stderr!.pipe(log);
    void proc.exited.then((code) => {
      if (this.stopping || generation !== this.generation) return;
      this.onUnexpectedExit({ at: Date.now(), name: this.name, pid: proc.child.pid!, code, tail: proc.output().slice(-1_500) });
      setTimeout(() => {
        if (!this.stopping && generation === this.generation) void this.start().catch(() => undefined);
      }, 1_000);
    });
    return proc.waitForOutput(READY[this.service], 60_000);
  }

  get pid(): number {
    return this.current.child.pid!;
  }

  /** The port an HTTP service listens on, from its start-up line. */
  port(): number {
    const match = new RegExp(`"port":(\\d+)[^\\n]*${this.service} listening`).exec(this.current.output());
    if (!match) throw new Error(`${this.name} printed no port`);
    return Number(match[1]);
  }

  /** kill -9, then a new process at once; resolves with the kill once the new one runs. */
  async kill(): Promise<Kill> {
    const victim = this.current;
    this.generation++;
    const kill: Kill = { at: Date.now(), name: this.name, pid: victim.child.pid! };
    victim.child.kill('SIGKILL');
    await victim.exited;
    await this.start().then(
      () => (kill.readyAt = Date.now()),
      () => undefined,
    );
    return kill;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.current.child.exitCode === null && this.current.child.signalCode === null) {
      this.current.child.kill('SIGKILL');
      await this.current.exited;
    }
  }
}
