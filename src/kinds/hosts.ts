// `dns: host`: the lab's block of names in the hosts file the lab's namespace resolves with.
import { join } from "node:path/posix";
import { renderHostsBlock, withHostsBlock } from "../render/hosts-block.js";
import { type Kind, verdict } from "./types.js";

export interface WantHosts {
  /** The hosts file lookups in the lab's namespace see. */
  path: string;
  /** What a namespace's hosts file starts as (a copy of the host's). */
  base: string;
  block: string;
}

/**
 * The hosts file lookups see: /etc/hosts, or /etc/netns/<ns>/hosts for a lab in a namespace
 * (`ip netns exec` bind-mounts it over /etc/hosts, so it starts as a copy of /etc/hosts).
 */
export function hostsPath(netns: string | null, etc = "/etc"): string {
  return netns ? join(etc, "netns", netns, "hosts") : join(etc, "hosts");
}

export interface HostsPayload extends WantHosts {
  text: string;
  exists: boolean;
}

export const hostsKind: Kind<WantHosts> = {
  name: "hosts",
  desired(env) {
    const block = renderHostsBlock(env.lab);
    return block ? [{ path: hostsPath(env.netns), base: hostsPath(null), block }] : [];
  },
  observe: (want) => ({ files: want.flatMap((w) => [w.path, w.base]) }),
  diff(want, obs, env) {
    return {
      verdicts: want.map((w) => {
        const have = obs.files.get(w.path) ?? null;
        const current = have ?? obs.files.get(w.base) ?? "";
        const next = withHostsBlock(current, env.lab.name, w.block);
        const journaled = have !== null && current.includes(`# BEGIN qnet:${env.lab.name} `);
        return verdict(
          "hosts",
          w.path,
          "the lab's VMs by name",
          next === have
            ? []
            : [
                {
                  kind: "hosts",
                  what: `add the lab's names to ${w.path}`,
                  reason: journaled ? "the lab's block differs" : "dns: host",
                  undo: journaled
                    ? null
                    : {
                        kind: "hosts-block",
                        path: w.path,
                        lab: env.lab.name,
                        created: have === null,
                      },
                  payload: { ...w, text: next, exists: have !== null },
                },
              ],
          journaled ? "drifted" : "missing",
        );
      }),
    };
  },
};
