// One dnsmasq per DHCP network, bound to its bridge: started when not running, restarted when its
// configuration is not the lab's any more.

import { processKey } from "../facts/types.js";
import type { BridgeNetwork } from "../model/lab.js";
import {
  type DnsmasqPaths,
  dnsmasqPaths,
  renderDnsmasqConf,
  wantsDnsmasq,
} from "../render/dnsmasq-conf.js";
import { type Kind, verdict } from "./types.js";

export interface WantDnsmasq {
  network: string;
  bridge: string;
  conf: string;
  paths: DnsmasqPaths;
  /** The argument that names this instance's configuration: how its process is recognised. */
  match: string;
}

export const confArg = (conf: string) => `--conf-file=${conf}`;

export const dnsmasqKind: Kind<WantDnsmasq> = {
  name: "dnsmasq",
  desired: (env) =>
    env.lab.networks.flatMap((n) => {
      if (n.type !== "bridge" || !wantsDnsmasq(n)) return [];
      const paths = dnsmasqPaths(env.stateDir, n.name);
      return [
        {
          network: n.name,
          bridge: (n as BridgeNetwork).bridge,
          conf: renderDnsmasqConf(env.lab, n, env.stateDir, { rootless: env.rootless !== null }),
          paths,
          match: confArg(paths.conf),
        },
      ];
    }),
  observe: (want) => ({
    processes: want.map((w) => ({ pidfile: w.paths.pidfile, match: w.match })),
    files: want.map((w) => w.paths.conf),
  }),
  diff(want, obs) {
    return {
      verdicts: want.map((w) => {
        const pid =
          obs.processes.get(processKey({ pidfile: w.paths.pidfile, match: w.match })) ?? null;
        const confSame = obs.files.get(w.paths.conf) === w.conf;
        const reason =
          pid === null
            ? `not running (log: ${w.paths.logfile})`
            : confSame
              ? null
              : "its configuration is not the lab's (the topology changed)";
        return verdict(
          "dnsmasq",
          w.network,
          `pid ${pid}, DHCP/DNS on ${w.bridge}`,
          reason === null
            ? []
            : [
                {
                  kind: "dnsmasq",
                  what: `${pid === null ? "run" : "restart"} dnsmasq on ${w.bridge} (DHCP with a fixed lease per VM NIC, DNS for the lab)`,
                  reason,
                  undo: { kind: "process", pidfile: w.paths.pidfile, match: w.match },
                  payload: { ...w, running: pid },
                },
              ],
          pid === null ? "missing" : "drifted",
        );
      }),
    };
  },
};
