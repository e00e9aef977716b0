// The lab's network namespace: made when missing (and then deleted on down), used as is when it exists.
import { ABSENT, type Kind, verdict } from "./types.js";

export interface WantNetns {
  name: string;
}

export const netnsKind: Kind<WantNetns> = {
  name: "netns",
  desired: (env) => (env.netns ? [{ name: env.netns }] : []),
  observe: () => ({}),
  diff(want, obs) {
    return {
      verdicts: want.map((w) =>
        verdict(
          "netns",
          w.name,
          "network namespace",
          obs.netnsExists
            ? []
            : [
                {
                  kind: "netns",
                  what: `create network namespace ${w.name}`,
                  reason: ABSENT,
                  undo: { kind: "netns", name: w.name },
                  payload: w,
                },
              ],
          "missing",
        ),
      ),
    };
  },
};
