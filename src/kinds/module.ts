// Kernel features the lab's links need (bridge, tun, macvtap): loaded with modprobe when absent.
import type { Lab } from "../model/lab.js";
import { ABSENT, type Kind, verdict } from "./types.js";

export interface WantModule {
  name: "bridge" | "tun" | "macvtap" | "vxlan";
  why: string;
}

/** The features a lab's links need. */
export function modulesOf(lab: Lab): WantModule[] {
  const out: WantModule[] = [];
  const nets = lab.networks;
  const nics = lab.vms.flatMap((v) => v.nics);
  const macvtap = new Set(
    nets.flatMap((n) => (n.type === "bridged" && n.mode === "macvtap" ? [n.name] : [])),
  );
  if (nets.some((n) => n.type === "bridge" || (n.type === "bridged" && n.mode === "bridge")))
    out.push({ name: "bridge", why: "the lab has bridges" });
  if (nics.some((n) => n.tap && !macvtap.has(n.network)))
    out.push({ name: "tun", why: "VM NICs use taps" });
  if (nics.some((n) => macvtap.has(n.network)))
    out.push({ name: "macvtap", why: "VM NICs use macvtaps" });
  if (lab.part && nets.some((n) => n.type === "bridge" && n.span))
    out.push({ name: "vxlan", why: "networks span hosts" });
  return out;
}

export const moduleKind: Kind<WantModule> = {
  name: "module",
  desired: (env) => modulesOf(env.lab),
  observe: (want) => ({ modules: want.map((w) => w.name) }),
  diff(want, obs) {
    return {
      verdicts: want.map((w) =>
        verdict(
          "module",
          w.name,
          `kernel feature (${w.why})`,
          obs.modules.has(w.name)
            ? []
            : [
                {
                  kind: "module",
                  what: `load kernel module ${w.name}`,
                  reason: `${ABSENT} (${w.why})`,
                  undo: null,
                  payload: w,
                },
              ],
          "missing",
        ),
      ),
    };
  },
};
