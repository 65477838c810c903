// Which process sent a webhook: the receivers see only the client's port, so the chaos run
// looks the connection up in /proc (Linux) to find the delivery process that holds it. A
// webhook sent again after a 2xx is allowed only when the process that sent the first one was
// killed before it could record the answer; this is how the checks know which process that was.
import fs from 'node:fs';

/**
 * The inode of the TCP socket whose local port is `localPort` and remote port `remotePort`,
 * from the text of /proc/net/tcp or /proc/net/tcp6 (ports are hexadecimal there).
 */
export function socketInode(table: string, localPort: number, remotePort: number): string | undefined {
  for (const line of table.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 10) continue;
    const port = (address: string) => Number.parseInt(address.slice(address.lastIndexOf(':') + 1), 16);
    if (port(fields[1]) === localPort && port(fields[2]) === remotePort && fields[9] !== '0') return fields[9];
  }
  return undefined;
}

const readTable = (file: string) => {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
};

/** The process among `pids` that holds the client end of a connection from `clientPort` to `serverPort`. */
export function socketOwner(clientPort: number, serverPort: number, pids: readonly number[]): number | undefined {
  const inode = socketInode(readTable('/proc/net/tcp'), clientPort, serverPort) ?? socketInode(readTable('/proc/net/tcp6'), clientPort, serverPort);
  if (!inode) return undefined;
  const target = `socket:[${inode}]`;
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (fs.readlinkSync(`/proc/${pid}/fd/${fd}`) === target) return pid;
      } catch {
        // The descriptor closed meanwhile.
      }
    }
  }
  return undefined;
}

/**
 * Connection → sending process, looked up once per keep-alive connection (a lookup reads /proc,
 * a few milliseconds). A killed process's connections are forgotten, so a port it used and
 * another process reuses is looked up afresh.
 */
export function createSenderIndex(candidates: () => readonly number[]) {
  const owners = new Map<string, number>();
  return {
    lookup(clientPort: number, serverPort: number): number | undefined {
      const key = `${serverPort}:${clientPort}`;
      const cached = owners.get(key);
      if (cached !== undefined) return cached;
      const pid = socketOwner(clientPort, serverPort, candidates());
      if (pid !== undefined) owners.set(key, pid);
      return pid;
    },
    forget(pid: number): void {
      for (const [key, owner] of owners) if (owner === pid) owners.delete(key);
    },
  };
}
