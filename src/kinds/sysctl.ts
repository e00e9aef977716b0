// Kernel switches the lab needs in its namespace: ip_forward for NAT and forwards, route_localnet on
// bridges with loopback forwards, and bridge-nf-call-* off in the lab's own namespace.
import { natNeeds } from "../render/nftables.js";
import { ABSENT, type Kind, type Verdict, verdict } from "./types.js";

export interface WantSysctl {
  /** The path under /proc/sys: net/ipv4/ip_forward. */
  key: string;
  value: string;
  why: string;
  /** Only when the key exists (bridge-nf-call-* exist while br_netfilter is loaded). */
  ifPresent: boolean;
  /** The key a not-yet-existing interface takes its first value from (net/ipv4/conf/default/...). */
  defaultKey: string | null;
}

const BRIDGE_NF = ["iptables", "ip6tables", "arptables"].map(
  (t) => `net/bridge/bridge-nf-call-${t}`,
);

/** The /proc/sys path of an interface setting (interface names may hold dots: paths take them as is). */
export const ifSysctl = (ifname: string, leaf: string) => `net/ipv4/conf/${ifname}/${leaf}`;

/** The people's spelling of a /proc/sys path (dots), where no interface name holds a dot. */
export const showSysctl = (key: string) =>
  key.split("/").some((p) => p.includes(".")) ? key : key.replaceAll("/", ".");

export const sysctlKind: Kind<WantSysctl> = {
  name: "sysctl",
  desired(env) {
    const { lab } = env;
    const needs = natNeeds(lab, env.rootless?.publishedVia ?? null);
    const out: WantSysctl[] = [];
    if (needs.ipForward)
      out.push({
        key: "net/ipv4/ip_forward",
        value: "1",
        why: "NAT and forwards route through the host",
        ifPresent: false,
        defaultKey: null,
      });
    for (const br of needs.routeLocalnet)
      out.push({
        key: ifSysctl(br, "route_localnet"),
        value: "1",
        // DNAT of the host's own 127.0.0.1 connections to a VM: the kernel refuses to route a loopback
        // source out of a non-loopback device unless route_localnet is on for it (only this bridge).
        why: "forwards bound to 127.0.0.1 are DNATed to a VM",
        ifPresent: false,
        defaultKey: ifSysctl("default", "route_localnet"),
      });
    if (env.netns && env.bridgeNfPerNetns && lab.networks.some((n) => n.type !== "user")) {
      // With br_netfilter loaded, bridged frames go through iptables when the namespace's
      // bridge-nf-call-* is 1, and a bridge's own nf_call_* = 0 cannot turn that off (the kernel ORs
      // them). Inside the lab's namespace (per namespace since Linux 5.3) qnet turns them off, so a
      // FORWARD drop there cannot eat VM-to-VM frames; on the host's namespace it leaves them alone.
      for (const key of BRIDGE_NF)
        out.push({
          key,
          value: "0",
          why: "bridged frames skip iptables (br_netfilter is loaded)",
          ifPresent: true,
          defaultKey: null,
        });
    }
    return out;
  },
  observe: (want) => ({
    sysctls: want.flatMap((w) => (w.defaultKey ? [w.key, w.defaultKey] : [w.key])),
  }),
  diff(want, obs) {
    const verdicts: Verdict[] = [];
    for (const w of want) {
      const have = obs.sysctls.get(w.key);
      if (have === undefined && w.ifPresent) continue;
      // An interface made in this run starts from the namespace's default for new interfaces.
      const before = have ?? (w.defaultKey ? obs.sysctls.get(w.defaultKey) : undefined) ?? "0";
      const name = showSysctl(w.key);
      verdicts.push(
        verdict(
          "sysctl",
          name,
          `${w.value} (${w.why})`,
          have === w.value
            ? []
            : [
                {
                  kind: "sysctl",
                  what: `set ${name}=${w.value} (restored to ${before} on down)`,
                  reason: `${have === undefined ? ABSENT : `it is ${have}`}; ${w.why}`,
                  undo: { kind: "sysctl", key: w.key, value: before },
                  payload: w,
                },
              ],
          have === undefined ? "missing" : "drifted",
        ),
      );
    }
    return { verdicts };
  },
};
