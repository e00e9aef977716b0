// The host's address on each private bridge (the network's gateway): added when missing.
import { batchLine, linksByName } from "./links.js";
import { type Kind, verdict } from "./types.js";

export interface WantAddress {
  /** "10.0.2.1/24". */
  cidr: string;
  bridge: string;
  network: string;
}

export const addressKind: Kind<WantAddress> = {
  name: "address",
  desired: (env) =>
    env.lab.networks.flatMap((n) =>
      n.type === "bridge" && n.gateway
        ? [{ cidr: `${n.gateway}/${n.prefix}`, bridge: n.bridge, network: n.name }]
        : [],
    ),
  observe: () => ({ links: true }),
  diff(want, obs) {
    const links = linksByName(obs);
    return {
      verdicts: want.map((a) => {
        const l = links.get(a.bridge);
        const [ip, p] = a.cidr.split("/");
        const v4 = (l?.addrs ?? []).filter((x) => x.family === "inet");
        const has = v4.some((x) => x.local === ip && String(x.prefixlen) === p);
        // Addresses someone else put on qnet's bridge are shown, never removed.
        const others = v4.filter((x) => !(x.local === ip && String(x.prefixlen) === p));
        const also = others.length
          ? `; also holds ${others.map((x) => `${x.local}/${x.prefixlen}`).join(", ")} (not qnet's)`
          : "";
        return verdict(
          "address",
          `${a.cidr} on ${a.bridge}`,
          `gateway of network ${a.network}${also}`,
          has
            ? []
            : [
                {
                  kind: "address",
                  what: `add address ${a.cidr} to bridge ${a.bridge}`,
                  reason: l ? `address missing${also}` : "the bridge is made in this run",
                  // The address goes with its bridge, which qnet deletes on down.
                  undo: null,
                  batch: [batchLine("addr", "add", a.cidr, "dev", a.bridge)],
                  payload: null,
                },
              ],
          "missing",
        );
      }),
    };
  },
};
