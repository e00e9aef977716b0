// Which host's part of a multi-host lab a command works on: the one named by --host, or the host whose
// underlay address is on this machine (in the lab's namespace); and the check that a part that is up is
// the one asked for.
import { EXIT, UserError } from "../errors.js";
import { parseJsonArray } from "../facts/ip-json.js";
import { netnsExists } from "../host/netns.js";
import { ProcessRunner } from "../host/runner.js";
import { labStateDir, readLabRecord } from "../host/state.js";
import type { Lab } from "../model/lab.js";
import { labPart } from "../resolve/part.js";

const listHosts = (lab: Lab) => (lab.hosts ?? []).map((h) => `${h.name} ${h.address}`).join(", ");

/** The IPv4 addresses on this machine's interfaces (in `netns` when given; none if it does not exist). */
async function localAddresses(netns: string | null): Promise<Set<string>> {
  if (netns && !netnsExists(netns)) return new Set();
  const r = await new ProcessRunner(netns).run(["ip", "-json", "-4", "addr", "show"], {
    allowFail: true,
  });
  const out = new Set<string>();
  if (r.exitCode !== 0) return out;
  for (const l of parseJsonArray(r.stdout, "ip -json addr show"))
    for (const a of Array.isArray(l.addr_info) ? l.addr_info : [])
      if (typeof a?.local === "string") out.add(a.local);
  return out;
}

/**
 * The lab a command on this machine works on: a single-host lab as it is; for a multi-host lab, the
 * part of `host`, or of the one host whose underlay address is local.
 */
export async function partFor(
  lab: Lab,
  opts: { host?: string | undefined; netns: string | null },
): Promise<Lab> {
  if (!lab.hosts) {
    if (opts.host)
      throw new UserError(
        `--host ${opts.host}: lab ${lab.name} names no hosts`,
        "--host applies to labs with a `hosts:` section",
        EXIT.usage,
      );
    return lab;
  }
  if (opts.host) {
    if (!lab.hosts.some((h) => h.name === opts.host))
      throw new UserError(
        `lab ${lab.name} has no host named "${opts.host}"`,
        `hosts: ${listHosts(lab)}`,
        EXIT.usage,
      );
    return labPart(lab, opts.host);
  }
  const local = await localAddresses(opts.netns);
  const mine = lab.hosts.filter((h) => local.has(h.address));
  const where = opts.netns ? `network namespace ${opts.netns}` : "this machine";
  if (mine.length === 1) return labPart(lab, mine[0]!.name);
  if (mine.length === 0)
    throw new UserError(
      `lab ${lab.name} spans hosts, and none of their underlay addresses is on ${where}`,
      `pass --host NAME (hosts: ${listHosts(lab)})`,
      EXIT.usage,
    );
  throw new UserError(
    `lab ${lab.name}: the underlay addresses of several hosts are on ${where} (${mine.map((h) => `${h.name} ${h.address}`).join(", ")})`,
    `pass --host with one of ${mine.map((h) => h.name).join(", ")}`,
    EXIT.usage,
  );
}

/**
 * The lab that is up under `stateRoot` must be `host`'s part (down and status with --host; up and plan
 * of a part, which would otherwise take another host's objects for stale ones of its own).
 */
export function checkRecordedHost(stateRoot: string, lab: string, host: string | undefined): void {
  if (!host) return;
  const rec = readLabRecord(labStateDir(stateRoot, lab));
  if (!rec) return; // nothing is up: the command says so itself
  const part = rec.lab.part?.host ?? null;
  if (part !== host)
    throw new UserError(
      `lab ${lab} under ${stateRoot} is ${part ? `host ${part}'s part` : "not a part of a multi-host lab"}, not host ${host}'s`,
      "each host's part has its own state directory: pass the --state-dir of that host's part (or take the other down first)",
      EXIT.usage,
    );
}
