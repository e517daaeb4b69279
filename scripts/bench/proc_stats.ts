/**
 * Process figures read from Linux /proc: CPU time (utime + stime), memory (VmRSS, VmHWM) and the
 * TCP connections a process holds to a given port. Every reader returns `undefined` when the
 * process is gone or /proc is not there, so a benchmark row reports "n/a" instead of failing.
 */

/** Clock ticks per second for /proc/<pid>/stat times: USER_HZ, 100 on every Linux we run on. */
const CLOCK_TICKS = 100;

/** CPU seconds the process has used so far, user + system. */
export function cpuSeconds(pid: number): number | undefined {
  const text = readText(`/proc/${pid}/stat`);
  if (text === undefined) return undefined;
  // The command name (field 2) is in parentheses and may contain spaces: split after the last ")".
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  // proc(5): utime is field 14 and stime field 15; fields[0] here is field 3 (state).
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) return undefined;
  return (utime + stime) / CLOCK_TICKS;
}

export interface Memory {
  /** Resident set size now, bytes. */
  rss: number;
  /** Peak resident set size over the process's whole life ("high water mark"), bytes. */
  hwm: number;
}

export function memory(pid: number): Memory | undefined {
  const text = readText(`/proc/${pid}/status`);
  if (text === undefined) return undefined;
  const kib = (key: string) => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(text);
    return m ? Number(m[1]) * 1024 : undefined;
  };
  const rss = kib("VmRSS");
  const hwm = kib("VmHWM");
  return rss === undefined || hwm === undefined ? undefined : { rss, hwm };
}

/**
 * Established TCP connections owned by `pid` whose remote port is `remotePort`: the socket inodes
 * in /proc/<pid>/fd matched against /proc/net/tcp and tcp6 (which list sockets, not owners).
 */
export function tcpConnectionsTo(pid: number, remotePort: number): number | undefined {
  const inodes = new Set<string>();
  try {
    for (const entry of Deno.readDirSync(`/proc/${pid}/fd`)) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(Deno.readLinkSync(`/proc/${pid}/fd/${entry.name}`));
        if (m) inodes.add(m[1]);
      } catch {
        // The descriptor closed while we listed them.
      }
    }
  } catch {
    return undefined;
  }
  let count = 0;
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    const text = readText(table);
    if (text === undefined) continue;
    for (const line of text.split("\n").slice(1)) {
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode …
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      const port = parseInt(f[2].slice(f[2].lastIndexOf(":") + 1), 16);
      // State 01 is TCP_ESTABLISHED.
      if (f[3] === "01" && port === remotePort && inodes.has(f[9])) count++;
    }
  }
  return count;
}

function readText(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return undefined;
  }
}
