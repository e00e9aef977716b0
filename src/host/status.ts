// `qnet status`: each object a lab wants on the host, present, missing or drifted; and the known labs.
import { UserError } from "../errors.js";
import { desiredHost } from "../plan/host-plan.js";
import { type HostLink, observeHost } from "./iproute2.js";
import { Journal } from "./journal.js";
import { netnsExists } from "./netns.js";
import { ProcessRunner, type Runner } from "./runner.js";
import { type KnownLab, listLabs, readLabRecord, recordNetns } from "./state.js";

export type ObjectState = "present" | "missing" | "drifted";

export interface StatusObject {
  kind: "netns" | "bridge" | "tap" | "address" | "link" | "vm" | "dnsmasq" | "nft-table";
  name: string;
  state: ObjectState;
  /** What differs (drifted) or what it is, for people. */
  detail: string;
}

export interface LabStatus {
  lab: string;
  stateDir: string;
  netns: string | null;
  objects: StatusObject[];
  /** Every object present. */
  ok: boolean;
}

export { type KnownLab, listLabs };

function bridgeDrift(l: HostLink, mark: string): string[] {
  const d: string[] = [];
  if (l.alias !== mark) d.push(`alias ${l.alias ?? "none"} (not qnet's)`);
  if (l.kind !== "bridge" || !l.bridge) return [...d, `is a ${l.kind ?? "plain"} link`];
  if (l.bridge.stpState !== 0) d.push(`STP on (stp_state ${l.bridge.stpState})`);
  if (l.bridge.forwardDelay !== 0) d.push(`forward_delay ${l.bridge.forwardDelay}`);
  if (l.bridge.nfCallIptables) d.push("nf_call_iptables 1");
  if (!l.up) d.push("down");
  return d;
}

/** The state of one lab's host objects, from its state directory (the topology file is not needed). */
export async function labStatus(stateDir: string, runner?: Runner): Promise<LabStatus> {
  const rec = readLabRecord(stateDir);
  if (!rec) {
    throw new UserError(
      `no lab record (lab.json) in ${stateDir}`,
      "the lab is not up; `qnet down` cleans up a half-made one",
    );
  }
  const netns = recordNetns(rec);
  const objects: StatusObject[] = [];
  const want = desiredHost(rec.lab);
  const journal = Journal.read(stateDir);
  const nsCreated = journal.some((e) => e.undo.kind === "netns");
  // A link qnet made (journaled) that is gone now was deleted by hand: drift, not merely missing.
  const made = new Set(journal.flatMap((e) => (e.undo.kind === "link" ? [e.undo.name] : [])));
  const gone = (name: string): ObjectState => (made.has(name) ? "drifted" : "missing");
  if (netns) {
    const there = netnsExists(netns);
    objects.push({
      kind: "netns",
      name: netns,
      state: there ? "present" : "missing",
      detail: nsCreated ? "created by qnet" : "existing namespace",
    });
    if (!there) {
      for (const b of want.bridges)
        objects.push({ kind: "bridge", name: b.name, state: "missing", detail: "namespace gone" });
      for (const t of want.taps)
        objects.push({ kind: "tap", name: t.name, state: "missing", detail: "namespace gone" });
      return { lab: rec.lab.name, stateDir, netns, objects, ok: false };
    }
  }
  const snap = await observeHost(runner ?? new ProcessRunner(netns));
  const byName = new Map(snap.links.map((l) => [l.name, l]));
  for (const b of want.bridges) {
    const l = byName.get(b.name);
    if (!l) {
      objects.push({
        kind: "bridge",
        name: b.name,
        state: "missing",
        detail: `network ${b.network}`,
      });
    } else {
      const d = bridgeDrift(l, want.mark);
      objects.push({
        kind: "bridge",
        name: b.name,
        state: d.length ? "drifted" : "present",
        detail: d.length ? d.join(", ") : `network ${b.network}`,
      });
    }
    if (b.address) {
      const [ip, p] = b.address.split("/");
      const v4 = l?.addrs.filter((a) => a.family === "inet") ?? [];
      const has = v4.some((a) => a.local === ip && String(a.prefixlen) === p);
      const others = v4.filter((a) => !(a.local === ip && String(a.prefixlen) === p));
      objects.push({
        kind: "address",
        name: `${b.address} on ${b.name}`,
        state: has
          ? others.length
            ? "drifted"
            : "present"
          : others.length
            ? "drifted"
            : "missing",
        detail: others.length
          ? `also/instead: ${others.map((a) => `${a.local}/${a.prefixlen}`).join(", ")}`
          : "gateway",
      });
    }
  }
  for (const t of want.taps) {
    const l = byName.get(t.name);
    if (!l) {
      objects.push({
        kind: "tap",
        name: t.name,
        state: gone(t.name),
        detail: made.has(t.name)
          ? `deleted since qnet made it (${t.vm} nic ${t.nic})`
          : `${t.vm} nic ${t.nic}`,
      });
      continue;
    }
    const d: string[] = [];
    if (l.alias !== want.mark) d.push(`alias ${l.alias ?? "none"} (not qnet's)`);
    if (l.kind !== "tun") d.push(`is a ${l.kind ?? "plain"} link`);
    if (l.master !== t.bridge)
      d.push(l.master ? `attached to ${l.master}, not ${t.bridge}` : `detached from ${t.bridge}`);
    if (!l.up) d.push("down");
    if (l.tap && (l.tap.user ?? null) !== t.user)
      d.push(`owner ${l.tap.user ?? "none"}, wanted ${t.user ?? "none"}`);
    objects.push({
      kind: "tap",
      name: t.name,
      state: d.length ? "drifted" : "present",
      detail: d.length ? d.join(", ") : `${t.vm} nic ${t.nic} on ${t.bridge}`,
    });
  }
  return {
    lab: rec.lab.name,
    stateDir,
    netns,
    objects,
    ok: objects.every((o) => o.state === "present"),
  };
}
