// Checks each `bridged` network's uplink: it exists, is not wireless, and systemd-networkd will not undo the
// bridge (NetworkManager, which qnet drives through nmcli, has its own checks in network-manager.ts).
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { BridgedNetwork } from "../model/lab.js";
import { probe } from "./run.js";
import type { CheckResult, DoctorContext } from "./types.js";

/** ADMIN_STATE of a systemd-networkd link state file, or null. */
export function parseNetworkdState(text: string): string | null {
  return /^ADMIN_STATE=(.*)$/m.exec(text)?.[1]?.trim() ?? null;
}

async function exists(ctx: DoctorContext, path: string): Promise<boolean> {
  return (await probe(ctx.runner, ["test", "-e", path])).ok;
}

async function checkOne(ctx: DoctorContext, n: BridgedNetwork): Promise<CheckResult> {
  const base = { id: `uplink.${n.name}`, title: `uplink of ${n.name}` };
  const up = n.uplink;
  const where = ctx.runner.netns ? ` in namespace ${ctx.runner.netns}` : "";
  if (up === "." || up === ".." || up.includes("/")) {
    return {
      ...base,
      status: "fail",
      detail: `"${up}" is not an interface name.`,
      fix: "set `uplink:` to the host NIC on the LAN",
    };
  }
  const dir = join(ctx.env.sysRoot, "class/net", up);
  if (!(await exists(ctx, dir))) {
    return {
      ...base,
      status: "fail",
      detail: `Uplink ${up} does not exist${where}.`,
      fix: "set `uplink:` to an existing NIC (ip link)",
    };
  }
  if ((await exists(ctx, join(dir, "wireless"))) || (await exists(ctx, join(dir, "phy80211")))) {
    return {
      ...base,
      status: "fail",
      detail: `Uplink ${up} is wireless: a Wi-Fi client cannot carry the VMs' own MAC addresses, so bridged VMs get no link.`,
      fix: `use a \`bridge\` network with \`nat: true\` and \`uplink: ${up}\` instead of \`bridged\``,
    };
  }
  const managers: string[] = [];
  const fixes: string[] = [];
  if (!ctx.runner.netns) {
    const idx = await probe(ctx.runner, ["cat", join(dir, "ifindex")]);
    const ifindex = idx.stdout.trim();
    if (idx.ok && /^\d+$/.test(ifindex)) {
      try {
        const admin = parseNetworkdState(
          await readFile(join(ctx.env.networkdLinksDir, ifindex), "utf8"),
        );
        if (admin && admin !== "unmanaged") {
          managers.push(`systemd-networkd (ADMIN_STATE=${admin})`);
          fixes.push(
            `make ${up} a port of ${n.bridge} in systemd-networkd ([Network] Bridge=${n.bridge} in its .network file) or set Unmanaged=yes there, then networkctl reload`,
          );
        }
      } catch {
        // No state file: networkd does not manage the link.
      }
    }
  }
  if (managers.length) {
    return {
      ...base,
      status: "warn",
      detail: `Uplink ${up} is managed by ${managers.join(" and ")}, which can re-apply its own configuration and undo the bridge.`,
      fix: fixes.join("; "),
    };
  }
  return {
    ...base,
    status: "pass",
    detail: `Uplink ${up} is wired and systemd-networkd does not claim it${where}.`,
  };
}

export async function checkUplinks(ctx: DoctorContext): Promise<CheckResult[]> {
  const bridged = (ctx.lab?.networks ?? []).filter(
    (n): n is BridgedNetwork => n.type === "bridged",
  );
  if (bridged.length === 0) {
    return [
      {
        id: "uplink",
        title: "bridged uplinks",
        status: "skip",
        detail: "The lab has no `bridged` network, so no uplink to check.",
      },
    ];
  }
  const out: CheckResult[] = [];
  for (const n of bridged) out.push(await checkOne(ctx, n));
  return out;
}
