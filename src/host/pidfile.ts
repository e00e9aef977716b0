// Finding a process qnet started: its pidfile, checked against its command line so a reused PID never counts.
import { readFileSync } from "node:fs";

/** The PID in `pidfile` if that process is alive and `match` is one whole argument of it; null otherwise. */
export function livePid(pidfile: string, match: string): number | null {
  let pid: number;
  try {
    pid = Number(readFileSync(pidfile, "utf8").trim());
  } catch {
    return null;
  }
  if (!Number.isInteger(pid) || pid <= 1) return null;
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    return argv.includes(match) ? pid : null;
  } catch {
    return null;
  }
}
