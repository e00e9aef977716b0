// A LAN uplink moved through NetworkManager: qnet's bridge and port profiles added, marked and activated so the
// host never loses its address; and the way back (the original profile active again, qnet's profiles deleted).
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { UserError } from "../errors.js";
import { parseAddrInfo, parseJsonArray } from "../facts/ip-json.js";
import type { UplinkNmRecord } from "../model/undo.js";
import {
  type KeyfileMark,
  markKeyfile,
  type NmMovePlan,
  nmProfilePrefix,
} from "../plan/uplink-nm.js";
import { writeFileAtomic } from "./files.js";
import {
  findNetworkManager,
  type NmProcess,
  nmcli,
  nmPath,
  parseNmConnections,
  readNmFacts,
} from "./network-manager.js";
import { observeUplink } from "./observe.js";
import type { Runner } from "./runner.js";

/** The IPv4/IPv6 addresses of a link ("a.b.c.d/p"), or null when it does not exist. */
async function linkAddrs(runner: Runner, dev: string): Promise<string[] | null> {
  const r = await runner.run(["ip", "-json", "addr", "show", "dev", dev], { allowFail: true });
  if (r.exitCode !== 0) return null;
  return parseAddrInfo(r.stdout)
    .filter((a) => !a.tentative)
    .map((a) => `${a.local}/${a.prefixlen}`);
}

async function linkMaster(
  runner: Runner,
  dev: string,
): Promise<{ exists: boolean; master: string | null }> {
  const r = await runner.run(["ip", "-json", "link", "show", "dev", dev], { allowFail: true });
  if (r.exitCode !== 0) return { exists: false, master: null };
  const l = parseJsonArray(r.stdout, "ip -json link show")[0] ?? {};
  return { exists: true, master: typeof l.master === "string" ? l.master : null };
}

/** Poll `test` every 50 ms until it holds or `ms` pass; the last answer. */
async function until(test: () => Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await test()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(50);
  }
}

function theNetworkManager(runner: Runner): NmProcess {
  const nm = findNetworkManager(runner.netns);
  if (!nm) {
    throw new UserError(
      `NetworkManager does not run${runner.netns ? ` in namespace ${runner.netns}` : ""} any more`,
      "start it again, then run the command again",
    );
  }
  return nm;
}

/** Put qnet's comment and user data into a profile's keyfile, and have NetworkManager load it again. */
async function markProfile(runner: Runner, nm: NmProcess, uuid: string, mark: KeyfileMark) {
  const list = await nmcli(runner, nm, [
    "-t",
    "-f",
    "NAME,UUID,TYPE,DEVICE,FILENAME",
    "connection",
    "show",
  ]);
  const file = parseNmConnections(list.stdout).find((c) => c.uuid === uuid)?.filename;
  if (!file) throw new Error(`NetworkManager shows no keyfile for profile ${uuid}`);
  const path = nmPath(nm, file);
  writeFileAtomic(path, markKeyfile(readFileSync(path, "utf8"), mark), 0o600);
  await nmcli(runner, nm, ["connection", "load", file]);
}

/** The bridge's DHCP lease, once NetworkManager has one (null when `ms` pass first). */
async function waitLease(runner: Runner, nm: NmProcess, bridge: string, ms: number) {
  let lease: string | null = null;
  await until(async () => {
    const r = await nmcli(runner, nm, ["-t", "-f", "DHCP4", "device", "show", bridge], {
      allowFail: true,
    });
    lease = /:ip_address = (\S+)/.exec(r.stdout)?.[1] ?? null;
    return lease !== null;
  }, ms);
  return lease;
}

/**
 * Move the uplink onto the bridge through NetworkManager without the host losing its address:
 *   1. add qnet's two profiles (in memory only) and mark them;
 *   2. activate the bridge profile: NetworkManager makes the bridge with the uplink's MAC, STP off, and
 *      gives it the uplink's static (or pinned) addresses and routes next to the uplink's own;
 *   3. enslave the uplink to it: the bridge has a carrier, the host still answers on both;
 *   4. activate the port profile: NetworkManager takes the addresses off the uplink, the bridge's carry on;
 *   5. where a DHCP lease was pinned: once the bridge has a lease of its own, the pin comes off the device.
 */
export async function moveNm(
  runner: Runner,
  plan: NmMovePlan,
  progress: (m: string) => void,
  leaseTimeoutMs = 30_000,
): Promise<string[]> {
  const nm = theNetworkManager(runner);
  const notes: string[] = [];
  for (const p of plan.stale) {
    await nmcli(runner, nm, ["connection", "delete", "uuid", p.uuid], { allowFail: true });
  }
  await nmcli(runner, nm, plan.addBridge);
  await nmcli(runner, nm, plan.addPort);
  await markProfile(runner, nm, plan.bridgeProfile.uuid, plan.marks.bridge);
  await markProfile(runner, nm, plan.portProfile.uuid, plan.marks.port);
  progress(`NetworkManager: activating ${plan.bridgeProfile.id}`);
  await nmcli(runner, nm, ["connection", "up", "uuid", plan.bridgeProfile.uuid]);
  const ready = await until(async () => {
    const have = await linkAddrs(runner, plan.bridge);
    return have !== null && plan.bridgeAddrs.every((a) => have.includes(a));
  }, 10_000);
  if (!ready) {
    throw new Error(
      `bridge ${plan.bridge} did not get ${plan.bridgeAddrs.join(", ") || "created"} from NetworkManager within 10 s`,
    );
  }
  // While the uplink keeps its addresses and routes, it becomes a port: the bridge gets a carrier.
  await runner.run(["ip", "link", "set", "dev", plan.uplink, "master", plan.bridge]);
  progress(
    `NetworkManager: activating ${plan.portProfile.id} (${plan.uplink} joins ${plan.bridge})`,
  );
  await nmcli(runner, nm, ["connection", "up", "uuid", plan.portProfile.uuid]);
  if (plan.unpin && plan.pinned) {
    const lease = await waitLease(runner, nm, plan.bridge, leaseTimeoutMs);
    if (lease) {
      await nmcli(runner, nm, plan.unpin);
      notes.push(`${plan.bridge} holds its own DHCP lease ${lease}`);
    } else {
      notes.push(
        `${plan.bridge} got no DHCP lease within ${leaseTimeoutMs / 1000} s: it keeps ${plan.pinned.addresses.join(", ")} as static addresses while the lab is up`,
      );
    }
  }
  return notes;
}

/**
 * Undo a move: the original profile active again (the uplink leaves the bridge), qnet's profiles deleted
 * (those carrying both marks: the name prefix and the derived UUID), then wait until the uplink has its
 * addresses back. Idempotent: what is already back is left alone.
 */
export async function undoUplinkNm(runner: Runner, d: UplinkNmRecord): Promise<void> {
  const proc = findNetworkManager(runner.netns);
  if (!proc) {
    const up = await linkMaster(runner, d.uplink);
    const br = await linkMaster(runner, d.bridge);
    if (!br.exists && up.master !== d.bridge) return;
    throw new UserError(
      `NetworkManager does not run${runner.netns ? ` in namespace ${runner.netns}` : ""}, so ${d.uplink} cannot be given back to profile ${d.original?.id ?? "(none)"}`,
      "start NetworkManager, then run `qnet down` again",
    );
  }
  const nm = await readNmFacts(runner, proc);
  if (!nm.running) {
    throw new UserError(
      `NetworkManager (pid ${proc.pid}) does not answer nmcli, so ${d.uplink} cannot be given back`,
      "check `nmcli general`, then run `qnet down` again",
    );
  }
  const prefix = nmProfilePrefix(d.lab);
  const ours = d.profiles.filter((p) =>
    nm.connections.some((c) => c.uuid === p.uuid && c.id.startsWith(prefix)),
  );
  const original = d.original && nm.connections.find((c) => c.uuid === d.original!.uuid);
  const dev = nm.devices.find((x) => x.device === d.uplink);
  if (original) {
    if (dev?.profile?.uuid !== original.uuid) {
      await nmcli(runner, proc, ["connection", "up", "uuid", original.uuid]);
    } else if ((await linkMaster(runner, d.uplink)).master === d.bridge) {
      // Killed between the enslaving and the port profile: the uplink still has its addresses.
      await runner.run(["ip", "link", "set", "dev", d.uplink, "nomaster"]);
    }
  }
  for (const p of ours) await nmcli(runner, proc, ["connection", "delete", "uuid", p.uuid]);
  // NetworkManager deletes the bridge it made with its profile; one it could not manage it leaves behind.
  // The name was free before the move (qnet plans no move onto an existing interface): it goes too.
  const unmanaged = nm.devices.find((x) => x.device === d.bridge)?.state === "unmanaged";
  const gone = async () => !(await linkMaster(runner, d.bridge)).exists;
  if (!(await until(gone, unmanaged ? 0 : 5_000))) {
    await runner.run(["ip", "link", "del", "dev", d.bridge], { allowFail: true });
  }
  if (!original) return;
  const want = d.snapshot.addrs.map((a) => `${a.local}/${a.prefixlen}`);
  const back = await until(async () => {
    const have = await linkAddrs(runner, d.uplink);
    return have !== null && want.every((a) => have.includes(a));
  }, 15_000);
  if (!back) {
    const now = await observeUplink(runner, d.uplink);
    throw new UserError(
      `profile ${original.id} is active on ${d.uplink} again, but ${d.uplink} has ${now?.addrs.map((a) => `${a.local}/${a.prefixlen}`).join(", ") || "no address"}, not ${want.join(", ")} as before`,
      `check \`nmcli device show ${d.uplink}\`; the LAN's DHCP server may have given another address`,
    );
  }
}
