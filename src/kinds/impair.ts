// Impairments of the lab's NICs: netem (and tbf for a rate) on the tap's egress for the frames to the VM,
// and the tap's ingress redirected to an ifb carrying the same qdiscs for the frames from it. Observed
// with `tc -json`; qnet's qdiscs carry handle 5154:, its redirect filter priority 5154.
import { type ObservedRoot, observedRoot } from "../facts/tc-json.js";
import type { Observation } from "../facts/types.js";
import {
  describeImpairment,
  formatPercent,
  formatRate,
  formatTime,
  type Impairment,
  needsNetem,
} from "../model/impair.js";
import {
  CHILD_HANDLE,
  FILTER_PREF,
  QDISC_HANDLE,
  redirectLines,
  rootQdiscLines,
  tcLine,
} from "../render/tc.js";
import { type ImpairedTap, impairedTaps } from "./ifb.js";
import { linksByName } from "./links.js";
import { tapRecreateReason, tapsOf } from "./tap.js";
import { type Action, type Kind, type Verdict, verdict } from "./types.js";

export interface ImpairPayload {
  /** `tc -batch` lines of this action. */
  lines: string[];
}

/** Kernel features an impairment needs, with what depends on each. */
const FEATURES: { name: string; why: string; needed: (i: Impairment) => boolean }[] = [
  {
    name: "sch_netem",
    why: "delay, jitter, loss, duplicate, corrupt and reorder are netem's (only `rate` works without it)",
    needed: needsNetem,
  },
  { name: "sch_tbf", why: "`rate` is shaped by tbf", needed: (i) => i.rateBit !== undefined },
  { name: "ifb", why: "the frames a VM sends are shaped on an ifb", needed: () => true },
  { name: "act_mirred", why: "the tap's ingress is redirected to the ifb", needed: () => true },
  { name: "cls_u32", why: "the redirect filter matches every frame", needed: () => true },
  { name: "sch_ingress", why: "the redirect hangs on the tap's ingress", needed: () => true },
];

/** Within what the kernel keeps: netem stores times in ticks and probabilities as 32-bit fractions. */
function close(a: number | undefined, b: number | undefined, abs: number, rel: number): boolean {
  const x = a ?? 0;
  const y = b ?? 0;
  return Math.abs(x - y) <= abs + rel * Math.max(Math.abs(x), Math.abs(y));
}

/** Does the observed root carry exactly the wanted impairment? */
export function rootMatches(want: Impairment, have: ObservedRoot): boolean {
  const kind = needsNetem(want) ? "netem" : "tbf";
  if (have.root !== kind) return false;
  const h = have.impairment;
  return (
    close(want.delayUs, h.delayUs, 2, 0.002) &&
    close(want.jitterUs, h.jitterUs, 2, 0.002) &&
    close(want.lossPct, h.lossPct, 0.0005, 0.001) &&
    close(want.duplicatePct, h.duplicatePct, 0.0005, 0.001) &&
    close(want.corruptPct, h.corruptPct, 0.0005, 0.001) &&
    close(want.reorderPct, h.reorderPct, 0.0005, 0.001) &&
    close(want.rateBit, h.rateBit, 8, 0.01)
  );
}

/** What a root carries, in the file's words: "netem delay 10ms", "no qdisc of qnet's". */
function showRoot(r: ObservedRoot): string {
  if (r.root === "none" || r.root === "foreign") return r.detail;
  const i = r.impairment;
  const parts = [
    i.delayUs !== undefined ? `delay ${formatTime(i.delayUs)}` : "",
    i.jitterUs !== undefined ? `jitter ${formatTime(i.jitterUs)}` : "",
    i.lossPct !== undefined ? `loss ${formatPercent(i.lossPct)}` : "",
    i.duplicatePct !== undefined ? `duplicate ${formatPercent(i.duplicatePct)}` : "",
    i.corruptPct !== undefined ? `corrupt ${formatPercent(i.corruptPct)}` : "",
    i.reorderPct !== undefined ? `reorder ${formatPercent(i.reorderPct)}` : "",
    i.rateBit !== undefined ? `rate ${formatRate(i.rateBit)}` : "",
  ].filter(Boolean);
  return `${r.detail}${parts.length ? ` ${parts.join(", ")}` : " without delay"}`;
}

const redirectOk = (obs: Observation, t: ImpairedTap) =>
  (obs.ingressFilters.get(t.tap) ?? []).some(
    (f) => f.pref === FILTER_PREF && f.redirectTo === t.ifb,
  );
const hasOurFilter = (obs: Observation, tap: string) =>
  (obs.ingressFilters.get(tap) ?? []).some((f) => f.pref === FILTER_PREF);
const hasIngress = (obs: Observation, dev: string) =>
  (obs.qdiscs ?? []).some((q) => q.dev === dev && q.kind === "ingress");

export const impairKind: Kind<ImpairedTap> = {
  name: "impair",
  desired: (env) => impairedTaps(env.lab),
  observe: (want) => {
    const impaired = want.flatMap((w) => (w.impair ? [w.impair] : []));
    return want.length === 0
      ? {}
      : {
          links: true,
          qdiscs: true,
          ingressFilters: want.map((w) => w.tap),
          kernelFeatures: FEATURES.filter((f) => impaired.some(f.needed)).map((f) => f.name),
        };
  },
  diff(want, obs, env) {
    const links = linksByName(obs);
    const taps = new Map(tapsOf(env.lab).map((t) => [t.name, t]));
    const qdiscs = obs.qdiscs ?? [];
    const problems: string[] = [];
    const verdicts: Verdict[] = [];
    const impaired = want.flatMap((w) => (w.impair ? [w.impair] : []));
    for (const f of FEATURES) {
      const k = obs.kernelFeatures.get(f.name);
      if (k?.state === "absent" && impaired.some(f.needed))
        problems.push(
          `the running kernel has no ${f.name} (${k.source}): ${f.why}; use a kernel with it (Debian's linux-image-amd64 has it as a module), or remove those impairments`,
        );
    }
    for (const t of want) {
      const l = links.get(t.tap);
      const wt = taps.get(t.tap);
      // A tap made (anew) in this run starts without qdiscs, whatever the old one had.
      const freshTap = !l || !wt || tapRecreateReason(l, wt) !== null;
      const ifbLink = links.get(t.ifb);
      const freshIfb = ifbLink?.kind !== "ifb";
      const none: ObservedRoot = { root: "none", impairment: {}, detail: "no qdisc of qnet's" };
      const toVm = freshTap ? none : observedRoot(qdiscs, t.tap, QDISC_HANDLE, CHILD_HANDLE);
      const who = `${t.vm} nic ${t.nic}`;
      const act = (
        what: string,
        reason: string,
        lines: string[],
        undo: Action["undo"],
      ): Action => ({
        kind: "impair",
        what,
        reason,
        undo,
        payload: { lines } satisfies ImpairPayload,
      });
      const actions: Action[] = [];
      if (!t.impair) {
        // Not impaired (any more): take away what qnet put there; leave anyone else's qdiscs alone.
        if (toVm.root === "netem" || toVm.root === "tbf")
          actions.push(
            act(
              `remove the impairment of the frames to ${who} (${t.tap})`,
              `${showRoot(toVm)} is in place, but ${who} has no impairment`,
              [tcLine("qdisc", "del", "dev", t.tap, "root")],
              null,
            ),
          );
        if (!freshTap && hasOurFilter(obs, t.tap))
          actions.push(
            act(
              `remove the redirect of the frames from ${who} (${t.tap} ingress)`,
              `qnet's redirect filter is in place, but ${who} has no impairment`,
              [tcLine("qdisc", "del", "dev", t.tap, "ingress")],
              null,
            ),
          );
        if (actions.length > 0) verdicts.push(verdict("impair", t.tap, "", actions, "drifted"));
        continue;
      }
      const imp = t.impair;
      const desc = describeImpairment(imp);
      if (!rootMatches(imp, toVm))
        actions.push(
          act(
            `impair the frames to ${who} on ${t.tap}: ${desc}`,
            toVm.root === "none" && freshTap
              ? `absent (${who})`
              : `frames to ${who}: ${showRoot(toVm)}, wanted ${desc}`,
            rootQdiscLines(t.tap, imp, !freshTap && toVm.root !== "none"),
            { kind: "qdisc", dev: t.tap, parent: "root" },
          ),
        );
      const fromVm = freshIfb ? none : observedRoot(qdiscs, t.ifb, QDISC_HANDLE, CHILD_HANDLE);
      const redirected = !freshTap && redirectOk(obs, t);
      if (!redirected || !rootMatches(imp, fromVm)) {
        const why = !redirected
          ? `frames from ${who} are not redirected to ${t.ifb}`
          : `frames from ${who}: ${showRoot(fromVm)} on ${t.ifb}, wanted ${desc}`;
        actions.push(
          act(
            `impair the frames from ${who} (${t.tap} ingress to ${t.ifb}): ${desc}`,
            freshTap && freshIfb ? `absent (${who})` : why,
            [
              ...(redirected
                ? []
                : redirectLines(t.tap, t.ifb, !freshTap && hasIngress(obs, t.tap))),
              ...rootQdiscLines(t.ifb, imp, !freshIfb && fromVm.root !== "none"),
            ],
            { kind: "qdisc", dev: t.tap, parent: "ingress" },
          ),
        );
      }
      const nothing = toVm.root === "none" && !redirected;
      verdicts.push(
        verdict(
          "impair",
          t.tap,
          `${who}: ${desc} (each direction)`,
          actions,
          nothing ? "missing" : "drifted",
        ),
      );
    }
    return { verdicts, problems };
  },
};
