// Runs one dnsmasq per DHCP network in the lab's namespace: writes its configuration, stops an old
// instance, starts it (the engine journaled how to stop it) and waits for its pidfile.
import { UserError } from "../errors.js";
import type { WantDnsmasq } from "../kinds/dnsmasq.js";
import type { Action } from "../kinds/types.js";
import { writeFileAtomic } from "./files.js";
import { livePid } from "./pidfile.js";
import { stopPid } from "./process.js";
import type { Runner } from "./runner.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function ensureDnsmasq(w: WantDnsmasq & { running: number | null }, runner: Runner) {
  writeFileAtomic(w.paths.conf, w.conf, 0o644);
  // dnsmasq rereads only hosts files on SIGHUP; interfaces, ranges and dhcp-host need a restart.
  const old = livePid(w.paths.pidfile, w.match);
  if (old !== null) await stopPid(old, 1_000);
  // dnsmasq forks into the background; the parent exits once the sockets are bound and the pid written.
  await runner.run(["dnsmasq", w.match], { timeoutMs: 15_000 });
  for (let i = 0; i < 200; i++) {
    if (livePid(w.paths.pidfile, w.match) !== null) return;
    await sleep(i < 20 ? 5 : 50);
  }
  throw new UserError(
    `dnsmasq for network ${w.network} did not start (no pidfile ${w.paths.pidfile})`,
    `its log is ${w.paths.logfile}`,
  );
}

export async function applyDnsmasq(actions: Action[], runner: Runner): Promise<void> {
  await Promise.all(
    actions.map((a) =>
      ensureDnsmasq(a.payload as WantDnsmasq & { running: number | null }, runner),
    ),
  );
}
