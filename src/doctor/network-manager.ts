// Checks for NetworkManager hosts: the daemon answers, bridge profiles with STP on (the how-to's 30 s),
// the lab's uplinks NetworkManager manages, configuration that leaves qnet's bridge unmanaged, netplan.
import { type NmConfigSection, unmanagedBy } from "../facts/nm-config.js";
import type { NmFacts } from "../facts/types.js";
import { findNetworkManager, nmcli, readNmFacts } from "../host/network-manager.js";
import type { Lab } from "../model/lab.js";
import { nmRefusal } from "../plan/uplink-manager.js";
import { nmHolds, nmProfile } from "../plan/uplink-nm.js";
import type { CheckResult, DoctorContext } from "./types.js";

export interface NmDoctorInput {
  lab: Lab | null;
  netns: string | null;
  nm: NmFacts | null;
  /** Bridge profiles' STP settings, by UUID (`nmcli -g bridge.stp,bridge.forward-delay`). */
  bridges: Map<string, { stp: string; forwardDelay: string }>;
  /** The merged configuration (`NetworkManager --print-config`), null when it could not be read. */
  config: NmConfigSection[] | null;
}

const NETPLAN_FILE = /\/netplan-[^/]*\.nmconnection$/;

/** The findings, from what was read (pure). */
export function nmFindings(i: NmDoctorInput): CheckResult[] {
  const where = i.netns ? `namespace ${i.netns}` : "this namespace";
  if (!i.nm) {
    return [
      {
        id: "nm",
        title: "NetworkManager",
        status: "skip",
        detail: `No NetworkManager runs in ${where}: qnet moves LAN uplinks with iproute2.`,
      },
    ];
  }
  const nm = i.nm;
  if (!nm.running) {
    return [
      {
        id: "nm",
        title: "NetworkManager",
        status: "fail",
        detail: `NetworkManager runs in ${where} (pid ${nm.pid}), but nmcli gets no answer from it: qnet can neither move an uplink through it nor keep it off the lab's taps.`,
        fix: "check `nmcli general` (NetworkManager's D-Bus system bus), or restart NetworkManager",
      },
    ];
  }
  const out: CheckResult[] = [
    {
      id: "nm",
      title: "NetworkManager",
      status: "pass",
      detail:
        `NetworkManager ${nm.version ?? ""} (pid ${nm.pid}) runs in ${where} and answers nmcli.`.replace(
          "  ",
          " ",
        ),
    },
  ];
  // Bridge profiles with STP on.
  const bridgeProfiles = nm.connections.filter((c) => c.type === "bridge");
  const stp = bridgeProfiles.filter((c) => i.bridges.get(c.uuid)?.stp === "yes");
  out.push(
    stp.length === 0
      ? {
          id: "nm.bridge-stp",
          title: "bridge profiles' STP",
          status: "pass",
          detail: `No bridge profile has STP on (${bridgeProfiles.length} bridge profile(s)).`,
        }
      : {
          id: "nm.bridge-stp",
          title: "bridge profiles' STP",
          status: "warn",
          detail:
            `STP is on in ${stp.map((c) => `${JSON.stringify(c.id)} (forward delay ${i.bridges.get(c.uuid)?.forwardDelay || "15"} s)`).join(", ")}. ` +
            "With STP on, every new port (the uplink, each VM's tap) listens and learns for 2 × forward delay, " +
            "30 s by default, before it forwards: the how-to's `nmcli c add type bridge` profile cuts the host off the " +
            "LAN for about 30 s, and each VM started later waits as long for its network.",
          fix: `${stp.map((c) => `nmcli connection modify ${JSON.stringify(c.id)} bridge.stp no`).join("; ")} (then \`nmcli connection up\` it), or let qnet make the bridge (\`type: bridged\`): its profile has STP off and forward delay 0`,
        },
  );
  // The lab's uplinks, and whether NetworkManager could manage qnet's bridge.
  const bridged = (i.lab?.networks ?? []).flatMap((n) =>
    n.type === "bridged" && n.mode === "bridge" ? [n] : [],
  );
  const skipOwn = (section: string) => section.startsWith("device-qnet-");
  for (const n of bridged) {
    const dev = nm.devices.find((d) => d.device === n.uplink);
    const m = {
      kind: "nmcli" as const,
      state: dev?.state ?? "unmanaged",
      profile: dev?.profile ?? null,
      settings: null,
    };
    const refusal = nmRefusal(n.name, n.uplink, m, n.backend === "nmcli");
    const base = { id: `nm.uplink.${n.name}`, title: `NetworkManager and ${n.uplink}` };
    if (refusal) {
      out.push({ ...base, status: "warn", detail: `${refusal.message}.`, fix: refusal.hint });
      continue;
    }
    if (!nmHolds(m)) {
      out.push({
        ...base,
        status: "pass",
        detail: `NetworkManager does not manage ${n.uplink} (${m.state}): qnet moves it with iproute2.`,
      });
      continue;
    }
    const labName = i.lab!.name;
    if (n.backend === "iproute2") {
      out.push({
        ...base,
        status: "warn",
        detail: `NetworkManager manages ${n.uplink} (${m.state}${m.profile ? `, profile ${JSON.stringify(m.profile.id)}` : ""}), but the network says \`backend: iproute2\`: NetworkManager would put its profile back over a move made behind its back.`,
        fix: "remove `backend: iproute2`: qnet then moves the uplink through nmcli",
      });
    } else {
      out.push({
        ...base,
        status: "pass",
        detail:
          `NetworkManager manages ${n.uplink} (${m.state}${m.profile ? `, profile ${JSON.stringify(m.profile.id)}` : ""}): qnet moves it through nmcli ` +
          `with profiles ${nmProfile(labName, "bridge", n.bridge).id} (STP off, forward delay 0) and ${nmProfile(labName, "port", n.uplink).id}, ` +
          `probes the LAN, rolls back when it stays silent, and \`qnet down\` activates ${m.profile ? JSON.stringify(m.profile.id) : "nothing"} again.`,
      });
    }
    if (i.config) {
      const why = unmanagedBy(i.config, { name: n.bridge, type: "bridge" }, skipOwn);
      out.push(
        why.length === 0
          ? {
              id: `nm.unmanaged.${n.name}`,
              title: `NetworkManager may manage ${n.bridge}`,
              status: "pass",
              detail: `No unmanaged-devices or [device] setting hides ${n.bridge} from NetworkManager.`,
            }
          : {
              id: `nm.unmanaged.${n.name}`,
              title: `NetworkManager may manage ${n.bridge}`,
              status: "fail",
              detail: `NetworkManager's configuration leaves ${n.bridge} unmanaged (${why.join("; ")}), so it cannot activate qnet's bridge profile on it and \`qnet up\` fails.`,
              fix: `narrow that setting so it does not match ${n.bridge} (see \`NetworkManager --print-config\`), or give the network another \`bridge:\` name`,
            },
      );
    }
  }
  if (!i.lab && i.config) {
    // Without a lab: the how-to's own bridge name.
    const why = unmanagedBy(i.config, { name: "br0", type: "bridge" }, skipOwn);
    if (why.length > 0) {
      out.push({
        id: "nm.unmanaged",
        title: "NetworkManager may manage bridges",
        status: "warn",
        detail: `NetworkManager's configuration leaves a bridge named br0 unmanaged (${why.join("; ")}): a bridge profile for it cannot be activated.`,
        fix: "narrow that setting, or name the bridge so that it does not match",
      });
    }
  }
  // Profiles generated by netplan.
  const netplan = nm.connections.filter((c) => NETPLAN_FILE.test(c.filename));
  const uplinkOn = new Map(bridged.map((n) => [n.uplink, n] as const));
  const held = netplan.filter((c) => c.device && uplinkOn.has(c.device));
  if (held.length > 0) {
    out.push({
      id: "nm.netplan",
      title: "netplan-generated profiles",
      status: "warn",
      detail:
        `${held.map((c) => `${c.device}'s profile ${JSON.stringify(c.id)} is generated by netplan (${c.filename}, from /etc/netplan/*.yaml)`).join("; ")}. ` +
        "netplan rewrites it at boot and on `netplan apply`, and `netplan apply` while a lab is up activates it again, " +
        "which takes the uplink off qnet's bridge. qnet never edits it: it only activates it again on `qnet down`.",
      fix: "change the YAML in /etc/netplan, not the profile; run `netplan apply` only while no lab bridges that uplink",
    });
  } else if (netplan.length > 0) {
    out.push({
      id: "nm.netplan",
      title: "netplan-generated profiles",
      status: "pass",
      detail: `${netplan.map((c) => JSON.stringify(c.id)).join(", ")} ${netplan.length > 1 ? "are" : "is"} generated by netplan (in /run/NetworkManager/system-connections, from /etc/netplan/*.yaml; netplan rewrites them at boot and on \`netplan apply\`): edit the YAML, not the profiles. No lab uplink uses them.`,
    });
  }
  return out;
}

export async function checkNetworkManager(ctx: DoctorContext): Promise<CheckResult[]> {
  const proc = findNetworkManager(ctx.runner.netns, ctx.env.procRoot);
  const nm = proc
    ? await readNmFacts(ctx.runner, proc, { config: true, procRoot: ctx.env.procRoot })
    : null;
  const bridges = new Map<string, { stp: string; forwardDelay: string }>();
  let config: NmConfigSection[] | null = null;
  if (proc && nm?.running) {
    for (const c of nm.connections.filter((x) => x.type === "bridge")) {
      const r = await nmcli(
        ctx.runner,
        proc,
        ["-g", "bridge.stp,bridge.forward-delay", "connection", "show", "uuid", c.uuid],
        { allowFail: true },
      );
      const [stp = "", forwardDelay = ""] = r.stdout.split("\n");
      bridges.set(c.uuid, { stp: stp.trim(), forwardDelay: forwardDelay.trim() });
    }
    config = nm.config;
  }
  return nmFindings({ lab: ctx.lab, netns: ctx.runner.netns, nm, bridges, config });
}
