// Where a rootless lab's objects can live, decided once for every kind: unchanged inside the lab's own
// user and network namespaces, skipped there (with the reason), observed but never changed, or refused
// (with the reason and the alternative). `up` refuses before anything is made; plan and status agree.
import type { Lab } from "../model/lab.js";
import type { KindName, KindPlan, PlanEnv } from "./types.js";

/** What the plan of a rootless lab knows about its place (PlanEnv.rootless). */
export interface RootlessPlace {
  /**
   * The interface inside the lab's namespace where the host-side helper (pasta or slirp4netns) delivers
   * connections to published ports that are not spliced to the namespace's loopback; null without one.
   */
  publishedVia: string | null;
}

export type PlaceRule =
  /** The kind works inside the namespaces exactly as on a host. */
  | { rule: "same" }
  /**
   * Nothing of this kind exists for a rootless lab: said once in the plan's notes when the file asked for
   * it (`quiet`: the kind is the host's business only, such as its firewall, and the file never asks).
   */
  | { rule: "skip"; why: string; quiet?: boolean }
  /** Observed as usual, but a change it needs is refused: only root can make it. */
  | { rule: "observe"; why: string; fix: string }
  /** A lab that has objects of this kind cannot run rootless. */
  | { rule: "refuse"; why: string; instead: string; subject: (lab: Lab) => RefusedSubject[] };

/** What of the lab a refusal is about: the field that asks for it (for a located error), and its name. */
export interface RefusedSubject {
  path: (string | number)[];
  what: string;
}

/** One reason the lab cannot run rootless, at the field that asks for it. */
export interface Refusal {
  path: (string | number)[];
  message: string;
}

const bridgedNetworks = (lab: Lab): RefusedSubject[] =>
  lab.networks.flatMap((n) =>
    n.type === "bridged"
      ? [
          {
            path: ["networks", n.name, "type"],
            what: `network ${n.name} (type: bridged, uplink ${n.uplink})`,
          },
        ]
      : [],
  );
const LAN: Omit<Extract<PlaceRule, { rule: "refuse" }>, "subject"> = {
  rule: "refuse",
  why: "the host's LAN interface belongs to root, and a rootless lab lives in namespaces of its own",
  instead:
    "use a `user` network (QEMU's user networking, with forwards on your loopback), or run qnet as root",
};
const MULTI_HOST: Extract<PlaceRule, { rule: "refuse" }> = {
  rule: "refuse",
  why: "a multi-host lab's VXLAN devices need the host's own underlay address, in root's namespace",
  instead: "run the multi-host lab as root",
  subject: (lab) =>
    lab.hosts && lab.hosts.length > 0
      ? [{ path: ["hosts"], what: "a multi-host lab (hosts:)" }]
      : [],
};

/** Every kind's rule for rootless labs (exhaustive: a new kind must say where it stands). */
export const ROOTLESS_RULES: { readonly [K in KindName]: PlaceRule } = {
  netns: {
    rule: "skip",
    why: "the lab's namespace is the one its holder process keeps",
    quiet: true,
  },
  module: {
    rule: "observe",
    why: "loading a kernel module needs root on the host",
    fix: "ask root to load it once (`modprobe NAME`), or run qnet as root",
  },
  "nm-unmanaged": {
    rule: "skip",
    why: "NetworkManager manages the host's namespace, never a lab's private one",
    quiet: true,
  },
  uplink: { ...LAN, subject: bridgedNetworks },
  bridge: { rule: "same" },
  address: { rule: "same" },
  tap: { rule: "same" },
  macvtap: { ...LAN, subject: bridgedNetworks },
  vxlan: MULTI_HOST,
  fdb: MULTI_HOST,
  ifb: { rule: "same" },
  impair: { rule: "same" },
  sysctl: { rule: "same" },
  "nft-table": { rule: "same" },
  firewall: {
    rule: "skip",
    why: "the lab's private namespace has no other firewall, and its traffic leaves through the helper's sockets, never the host's FORWARD chain",
    quiet: true,
  },
  dnsmasq: { rule: "same" },
  hosts: {
    rule: "skip",
    why: "`dns: host` writes /etc/hosts, which belongs to root; the VMs still resolve each other through the lab's dnsmasq",
  },
  overlay: { rule: "same" },
  seed: { rule: "same" },
  vm: { rule: "same" },
};

/** Whether a kind is observed and planned at all in a rootless lab. */
export function runsRootless(kind: KindName): boolean {
  const r = ROOTLESS_RULES[kind].rule;
  return r === "same" || r === "observe";
}

/**
 * Why the lab cannot run rootless, one refusal per subject, each with the field that asks for it, the
 * reason and the alternative: empty when it can. The one place that decides it. Pure.
 */
export function rootlessRefusals(lab: Lab): Refusal[] {
  const out = new Map<string, Refusal>();
  for (const rule of Object.values(ROOTLESS_RULES)) {
    if (rule.rule !== "refuse") continue;
    for (const s of rule.subject(lab)) {
      const message = `${s.what} cannot run rootless: ${rule.why}; ${rule.instead}`;
      out.set(message, { path: s.path, message });
    }
  }
  return [...out.values()];
}

/**
 * The plan of a kind that does not run rootless (skip or refuse): no verdicts; a note (skip) or a problem
 * (refuse) when the lab had objects of it.
 */
export function notRootlessPlan(kind: KindName, want: unknown[], env: PlanEnv): KindPlan {
  const rule = ROOTLESS_RULES[kind];
  if (want.length === 0) return { verdicts: [] };
  if (rule.rule === "skip")
    return { verdicts: [], notes: rule.quiet ? [] : [`rootless: no ${kind}: ${rule.why}`] };
  if (rule.rule === "refuse")
    return { verdicts: [], problems: rootlessRefusals(env.lab).map((r) => r.message) };
  return { verdicts: [] };
}

/** A kind observed rootless: a change it needs becomes a problem naming the fix. */
export function observedRootlessPlan(kind: KindName, plan: KindPlan): KindPlan {
  const rule = ROOTLESS_RULES[kind];
  if (rule.rule !== "observe") return plan;
  const problems = plan.verdicts
    .filter((v) => v.actions.length > 0)
    .map((v) => `${kind} ${v.name}: ${v.detail}; ${rule.why}: ${rule.fix}`);
  return { ...plan, problems: [...(plan.problems ?? []), ...problems] };
}

/**
 * The lab as a rootless run sees it, and what changed: a `netns:` name is not used (the lab has its own
 * namespaces), taps get no owner (QEMU runs as the user already, and no other user exists inside), and
 * NAT leaves by the helper's interface (the host's interfaces are not in the lab's namespace). Pure.
 */
export function rootlessLab(lab: Lab): { lab: Lab; notes: string[] } {
  const notes: string[] = [];
  if (lab.netns)
    notes.push(
      `rootless: \`netns: ${lab.netns}\` is not used: the lab runs in namespaces of its own`,
    );
  const owners = [...new Set(lab.vms.flatMap((v) => (v.user ? [v.user] : [])))];
  if (owners.length > 0)
    notes.push(
      `rootless: \`user: ${owners.join(", ")}\` is not used: QEMU runs as you, and the taps need no owner`,
    );
  const uplinks = lab.networks.flatMap((n) =>
    n.type === "bridge" && n.nat && n.uplink ? [`${n.name} (uplink ${n.uplink})`] : [],
  );
  if (uplinks.length > 0)
    notes.push(
      `rootless: NAT of ${uplinks.join(", ")} leaves through the lab's helper, not the host's interface`,
    );
  return {
    lab: {
      ...lab,
      netns: null,
      vms: lab.vms.map((v) => (v.user ? { ...v, user: null } : v)),
      networks: lab.networks.map((n) =>
        n.type === "bridge" && n.uplink ? { ...n, uplink: null } : n,
      ),
    },
    notes,
  };
}
