// Runs one dnsmasq per DHCP bridge network in the lab's namespace: writes its config, starts it (journaled),
// and repairs it (restart) when it died or its config changed.
import { existsSync, readFileSync } from "node:fs";
import { UserError } from "../errors.js";
import type { BridgeNetwork } from "../model/lab.js";
import { dnsmasqPaths, renderDnsmasqConf, wantsDnsmasq } from "../render/dnsmasq-conf.js";
import { bridgeNetworks } from "../render/nftables.js";
import type { LabContext } from "./context.js";
import { writeFileAtomic } from "./files.js";
import type { PhaseResult } from "./nat.js";
import { livePid } from "./pidfile.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function stop(pid: number): Promise<void> {
  const gone = () => !existsSync(`/proc/${pid}`);
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    return;
  }
  for (let i = 0; i < 50 && !gone(); i++) await sleep(20);
  if (!gone()) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
    for (let i = 0; i < 50 && !gone(); i++) await sleep(20);
  }
}

export function confArg(conf: string): string {
  return `--conf-file=${conf}`;
}

/** Make `net`'s dnsmasq run with the current configuration. */
export async function ensureDnsmasq(ctx: LabContext, net: BridgeNetwork): Promise<PhaseResult> {
  const p = dnsmasqPaths(ctx.stateDir, net.name);
  const text = renderDnsmasqConf(ctx.lab, net, ctx.stateDir);
  const match = confArg(p.conf);
  const confChanged = !existsSync(p.conf) || readFileSync(p.conf, "utf8") !== text;
  const pid = livePid(p.pidfile, match);
  if (pid !== null && !confChanged) return { changed: false, notes: [] };

  if (confChanged) writeFileAtomic(p.conf, text, 0o644);
  // dnsmasq rereads only hosts files on SIGHUP; interfaces, ranges and dhcp-host need a restart.
  if (pid !== null) await stop(pid);
  ctx.journal.record({
    what: `dnsmasq for network ${net.name} on ${net.bridge}`,
    undo: { kind: "process", pidfile: p.pidfile, match },
  });
  // dnsmasq forks into the background; the parent exits once the sockets are bound and the pid written.
  await ctx.runner.run(["dnsmasq", match], { timeoutMs: 15000 });
  for (let i = 0; i < 100; i++) {
    if (livePid(p.pidfile, match) !== null) {
      const why =
        pid !== null
          ? "restarted (configuration changed)"
          : confChanged
            ? "started"
            : "restarted (was not running)";
      return { changed: true, notes: [`dnsmasq for ${net.name} ${why}`] };
    }
    await sleep(50);
  }
  throw new UserError(
    `dnsmasq for network ${net.name} did not start (no pidfile ${p.pidfile})`,
    `its log is ${p.logfile}`,
  );
}

/** Every DHCP bridge network's dnsmasq. */
export async function applyDnsmasq(ctx: LabContext): Promise<PhaseResult> {
  const notes: string[] = [];
  let changed = false;
  for (const net of bridgeNetworks(ctx.lab)) {
    if (!wantsDnsmasq(net)) continue;
    const r = await ensureDnsmasq(ctx, net);
    changed ||= r.changed;
    notes.push(...r.notes);
  }
  return { changed, notes };
}
