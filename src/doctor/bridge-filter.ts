// Checks the bridge and br_netfilter modules, the bridge-nf-call-* sysctls, and the seed's persistent fix.
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Lab } from "../model/lab.js";
import { findForwardDrops } from "./forward-policy.js";
import { probe } from "./run.js";
import type { CheckResult, DoctorContext } from "./types.js";

export const NF_CALL_KEYS = [
  "bridge-nf-call-ip6tables",
  "bridge-nf-call-iptables",
  "bridge-nf-call-arptables",
] as const;
export const SYSCTL_FILE = "bridge-filter.conf";
export const UDEV_FILE = "99-bridge-filter.rules";

/** The sysctl.d file of the seed: all three calls off. */
export function sysctlFileText(): string {
  return `${NF_CALL_KEYS.map((k) => `net.bridge.${k}=0`).join("\n")}\n`;
}

/** The udev rule of the seed: re-apply the sysctl file whenever br_netfilter loads. */
export function udevRuleText(sysctlBinary: string, sysctlPath: string): string {
  return `ACTION=="add", SUBSYSTEM=="module", KERNEL=="br_netfilter", RUN+="${sysctlBinary} -p ${sysctlPath}"\n`;
}

/** key → value of a sysctl.conf text (`a.b = c` or `a/b=c`), later lines win. */
export function parseSysctlConf(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#") || line.startsWith(";")) continue;
    const eq = line.indexOf("=");
    if (eq < 0) continue;
    m.set(
      line.slice(0, eq).trim().replace(/^-/, "").replaceAll("/", "."),
      line.slice(eq + 1).trim(),
    );
  }
  return m;
}

async function moduleLoaded(ctx: DoctorContext, name: string): Promise<boolean> {
  try {
    const mods = await readFile(join(ctx.env.procRoot, "modules"), "utf8");
    if (mods.split("\n").some((l) => l.split(" ")[0] === name)) return true;
  } catch {
    // No /proc/modules (a kernel without loadable modules): fall back to /sys/module.
  }
  return existsSync(join(ctx.env.sysRoot, "module", name));
}

const labUsesBridges = (lab: Lab | null) => !lab || lab.networks.some((n) => n.type !== "user");

/** The three values read inside the runner's namespace, or null when br_netfilter is absent. */
async function readNfCalls(ctx: DoctorContext): Promise<Map<string, string> | null> {
  const out = new Map<string, string>();
  for (const k of NF_CALL_KEYS) {
    const r = await probe(ctx.runner, ["cat", join(ctx.env.procRoot, "sys/net/bridge", k)]);
    if (!r.ok) return null;
    out.set(k, r.stdout.trim());
  }
  return out;
}

export async function checkModules(ctx: DoctorContext): Promise<CheckResult[]> {
  const bridge = await moduleLoaded(ctx, "bridge");
  const nfLoaded = (await moduleLoaded(ctx, "br_netfilter")) || (await readNfCalls(ctx)) !== null;
  const nfText = nfLoaded
    ? "br_netfilter is loaded, so bridged frames may pass through the firewall (see bridge-nf-call)"
    : "br_netfilter is not loaded, so bridged frames skip the firewall";
  if (bridge) {
    return [
      {
        id: "modules",
        title: "bridge modules",
        status: "pass",
        detail: `bridge is loaded; ${nfText}.`,
      },
    ];
  }
  const needed = labUsesBridges(ctx.lab);
  return [
    {
      id: "modules",
      title: "bridge modules",
      status: needed ? "warn" : "pass",
      detail: `bridge is not loaded (it usually loads on its own when a bridge is created); ${nfText}.`,
      ...(needed ? { fix: "modprobe bridge" } : {}),
    },
  ];
}

async function applyRuntime(ctx: DoctorContext): Promise<string | null> {
  for (const k of NF_CALL_KEYS) {
    const r = await probe(ctx.runner, ["sysctl", "-q", "-w", `net.bridge.${k}=0`]);
    if (!r.ok) return `sysctl -w net.bridge.${k}=0 failed: ${r.stderr.trim()}`;
  }
  return null;
}

export async function checkNfCall(ctx: DoctorContext): Promise<CheckResult[]> {
  const base = { id: "bridge-nf-call", title: "bridge-nf-call-* sysctls" };
  const where = ctx.runner.netns ? ` in namespace ${ctx.runner.netns}` : "";
  let values = await readNfCalls(ctx);
  if (!values) {
    return [
      {
        ...base,
        status: "pass",
        detail: `br_netfilter is not loaded${where}, so bridged frames are not filtered.`,
      },
    ];
  }
  const on = NF_CALL_KEYS.filter((k) => values!.get(k) !== "0");
  if (on.length === 0) {
    return [
      {
        ...base,
        status: "pass",
        detail: `All three bridge-nf-call sysctls are 0${where}: bridged frames skip the firewall.`,
      },
    ];
  }
  const fix = NF_CALL_KEYS.map((k) => `sysctl -w net.bridge.${k}=0`).join("; ");
  if (!labUsesBridges(ctx.lab)) {
    return [
      {
        ...base,
        status: "pass",
        detail: `${on.join(", ")} on${where}, which does not matter: the lab only uses user networks.`,
      },
    ];
  }
  let fixed: string | undefined;
  if (ctx.fix) {
    const err = await applyRuntime(ctx);
    values = await readNfCalls(ctx);
    const still = NF_CALL_KEYS.filter((k) => values?.get(k) !== "0");
    if (!err && still.length === 0)
      fixed = `set ${on.map((k) => `net.bridge.${k}`).join(", ")} to 0${where}`;
  }
  if (fixed) {
    return [
      {
        ...base,
        status: "pass",
        detail: `The bridge-nf-call sysctls were on${where} and are now 0.`,
        fix,
        fixed,
      },
    ];
  }
  // Being on only hurts when something in the FORWARD path drops: then bridged frames vanish.
  const drops = await findForwardDrops(ctx);
  const verb = on.length === 1 ? "is" : "are";
  return [
    {
      ...base,
      status: drops.length ? "fail" : "warn",
      detail: drops.length
        ? `${on.join(", ")} ${verb} 1${where} and FORWARD drops (${drops.map((d) => d.where).join("; ")}), so frames between VMs on a bridge can be dropped by the firewall.`
        : `${on.join(", ")} ${verb} 1${where}: frames crossing the lab's bridges go through iptables, so any FORWARD drop added later (Docker, firewalld) silently eats them.`,
      fix,
    },
  ];
}

/** Does the file exist with each wanted key at the wanted value? */
async function fileState(
  path: string,
  want: (text: string) => boolean,
): Promise<"ok" | "missing" | "different"> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch {
    return "missing";
  }
  return want(text) ? "ok" : "different";
}

export async function checkPersistentFix(ctx: DoctorContext): Promise<CheckResult[]> {
  const base = { id: "bridge-nf-call.persistent", title: "bridge-nf-call persistent fix" };
  const sysctlPath = join(ctx.env.sysctlDir, SYSCTL_FILE);
  const udevPath = join(ctx.env.udevRulesDir, UDEV_FILE);
  const sysctlOk = (t: string) => {
    const m = parseSysctlConf(t);
    return NF_CALL_KEYS.every((k) => m.get(`net.bridge.${k}`) === "0");
  };
  const udevOk = (t: string) => /KERNEL=="br_netfilter"/.test(t) && t.includes(sysctlPath);
  const fix = `write ${sysctlPath} with the three net.bridge.bridge-nf-call-*=0 lines and ${udevPath} with: ${udevRuleText(ctx.env.sysctlBinary, sysctlPath).trim()}  (qnet doctor --fix does this)`;
  let s = await fileState(sysctlPath, sysctlOk);
  let u = await fileState(udevPath, udevOk);
  const changed: string[] = [];
  if (ctx.fix) {
    // Only create missing files: a file that exists with other content is the admin's, and stays.
    if (s === "missing") {
      await mkdir(ctx.env.sysctlDir, { recursive: true });
      await writeFile(sysctlPath, sysctlFileText(), { mode: 0o644, flag: "wx" });
      changed.push(`wrote ${sysctlPath}`);
      s = "ok";
    }
    if (u === "missing") {
      await mkdir(ctx.env.udevRulesDir, { recursive: true });
      await writeFile(udevPath, udevRuleText(ctx.env.sysctlBinary, sysctlPath), {
        mode: 0o644,
        flag: "wx",
      });
      changed.push(`wrote ${udevPath}`);
      u = "ok";
    }
  }
  const fixed = changed.length ? { fixed: changed.join("; ") } : {};
  if (s === "ok" && u === "ok") {
    return [
      {
        ...base,
        status: "pass",
        detail: `${sysctlPath} turns the bridge-nf-call sysctls off and ${udevPath} re-applies it whenever br_netfilter loads.`,
        ...fixed,
      },
    ];
  }
  const problems = [
    s === "missing"
      ? `${sysctlPath} is missing`
      : s === "different"
        ? `${sysctlPath} does not set all three bridge-nf-call sysctls to 0`
        : null,
    u === "missing"
      ? `${udevPath} is missing`
      : u === "different"
        ? `${udevPath} does not re-apply ${sysctlPath} when br_netfilter loads`
        : null,
  ].filter(Boolean);
  return [
    {
      ...base,
      status: "warn",
      detail: `${problems.join(" and ")}, so after a reboot or when Docker loads br_netfilter, bridged frames are filtered again.`,
      fix,
      ...fixed,
    },
  ];
}
