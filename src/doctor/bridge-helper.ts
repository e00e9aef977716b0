// Checks qemu-bridge-helper for unprivileged QEMU: present, setuid root, and bridge.conf allowing each bridge.
import { readFile, stat } from "node:fs/promises";
import { dirname, isAbsolute, join } from "node:path";
import type { Lab } from "../model/lab.js";
import type { CheckResult, DoctorContext } from "./types.js";

export type AclRule = { type: "allow" | "deny"; iface: string } | { type: "include"; path: string };

/** Parse one bridge.conf text (the helper's syntax: `allow NAME|all`, `deny NAME|all`, `include FILE`, `#`). */
export function parseBridgeConf(text: string): AclRule[] {
  const rules: AclRule[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.replace(/#.*/, "").trim();
    const [cmd, arg] = line.split(/\s+/, 2);
    if (!cmd || !arg) continue;
    if (cmd === "allow" || cmd === "deny") rules.push({ type: cmd, iface: arg });
    else if (cmd === "include") rules.push({ type: "include", path: arg });
  }
  return rules;
}

export interface Acl {
  rules: { type: "allow" | "deny"; iface: string; file: string }[];
  /** Files that could not be read, with the reason. */
  unreadable: string[];
}

/** Read an ACL file and everything it includes (each file once). */
export async function loadAcl(path: string, seen = new Set<string>()): Promise<Acl> {
  const acl: Acl = { rules: [], unreadable: [] };
  if (seen.has(path)) return acl;
  seen.add(path);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    acl.unreadable.push(`${path} (${(e as NodeJS.ErrnoException).code ?? "unreadable"})`);
    return acl;
  }
  for (const r of parseBridgeConf(text)) {
    if (r.type === "include") {
      const sub = await loadAcl(isAbsolute(r.path) ? r.path : join(dirname(path), r.path), seen);
      acl.rules.push(...sub.rules);
      acl.unreadable.push(...sub.unreadable);
    } else {
      acl.rules.push({ ...r, file: path });
    }
  }
  return acl;
}

/** The helper's decision: allowed when some allow matches and no deny does. */
export function aclAllows(acl: Acl, bridge: string): boolean {
  const m = (iface: string) => iface === "all" || iface === bridge;
  const allowed = acl.rules.some((r) => r.type === "allow" && m(r.iface));
  const denied = acl.rules.some((r) => r.type === "deny" && m(r.iface));
  return allowed && !denied;
}

function helperBridges(lab: Lab): string[] {
  return lab.networks
    .flatMap((n) =>
      n.type === "bridge" || (n.type === "bridged" && n.mode === "bridge") ? [n.bridge] : [],
    )
    .sort();
}

export async function checkBridgeHelper(ctx: DoctorContext): Promise<CheckResult[]> {
  const base = { id: "bridge-helper", title: "qemu-bridge-helper" };
  const { lab, env } = ctx;
  const users = [...new Set((lab?.vms ?? []).flatMap((v) => (v.user ? [v.user] : [])))].sort();
  if (!lab)
    return [
      {
        ...base,
        status: "skip",
        detail: "No topology given: the helper matters only for a lab that runs QEMU as a `user`.",
      },
    ];
  if (users.length === 0) {
    return [
      {
        ...base,
        status: "skip",
        detail: "The lab names no `user`, so QEMU runs as root and needs no bridge helper.",
      },
    ];
  }
  const bridges = helperBridges(lab);
  if (bridges.length === 0) {
    return [
      {
        ...base,
        status: "skip",
        detail: "The lab has no bridge for QEMU to join, so the helper is not used.",
      },
    ];
  }
  const why = `for ${users.join(", ")} to run QEMU with -netdev bridge (qnet itself opens taps it created for that user)`;
  let st: Awaited<ReturnType<typeof stat>>;
  try {
    st = await stat(env.bridgeHelper);
  } catch {
    return [
      {
        ...base,
        status: "warn",
        detail: `${env.bridgeHelper} is missing, which is needed ${why}.`,
        fix: "apt install qemu-system-common  (or your distribution's package with qemu-bridge-helper)",
      },
    ];
  }
  const problems: string[] = [];
  const fixes: string[] = [];
  if (!(st.uid === 0 && (st.mode & 0o4000) !== 0)) {
    problems.push(`${env.bridgeHelper} is not setuid root`);
    fixes.push(`chown root ${env.bridgeHelper} && chmod u+s ${env.bridgeHelper}`);
  }
  const acl = await loadAcl(env.bridgeConf);
  const denied = bridges.filter((b) => !aclAllows(acl, b));
  if (acl.unreadable.length) problems.push(`cannot read ${acl.unreadable.join(", ")}`);
  if (denied.length) {
    problems.push(`${env.bridgeConf} does not allow ${denied.join(", ")}`);
    fixes.push(
      `mkdir -p ${dirname(env.bridgeConf)} && ${denied.map((b) => `echo 'allow ${b}' >> ${env.bridgeConf}`).join(" && ")}`,
    );
  }
  if (problems.length === 0) {
    return [
      {
        ...base,
        status: "pass",
        detail: `${env.bridgeHelper} is setuid root and ${env.bridgeConf} allows ${bridges.join(", ")}.`,
      },
    ];
  }
  return [
    {
      ...base,
      status: "warn",
      detail: `${problems.join("; ")}, which is needed ${why}.`,
      fix: fixes.join("; "),
    },
  ];
}
