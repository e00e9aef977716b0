// The cloud-init NoCloud seed of each `disk` or `image` VM (hostname, login with the lab's key, the
// pinned host key, network-config): rewritten when what it says changes.
import { createHash } from "node:crypto";
import type { Vm } from "../model/lab.js";
import { vmFiles } from "../model/paths.js";
import { renderCloudInit } from "../render/cloud-init.js";
import { ABSENT, type Kind, verdict } from "./types.js";

export interface WantSeed {
  vm: Vm;
  path: string;
  /** What the seed says, minus the keys (which are made once per lab and VM and do not change). */
  stamp: string;
  stampFile: string;
}

export const seedKind: Kind<WantSeed> = {
  name: "seed",
  desired: (env) =>
    env.vms
      ? env.lab.vms.flatMap((vm) => {
          if (vm.guest.kind !== "disk" && vm.guest.kind !== "image") return [];
          const path = vmFiles(env.stateDir, vm.name).seed;
          const seed = renderCloudInit(env.lab, vm);
          const stamp = createHash("sha256")
            .update(JSON.stringify([seed, env.lab.sshKey]))
            .digest("hex");
          return [{ vm, path, stamp, stampFile: `${path}.sum` }];
        })
      : [],
  observe: (want) => ({ files: want.map((w) => w.stampFile), exists: want.map((w) => w.path) }),
  diff(want, obs) {
    return {
      verdicts: want.map((w) => {
        const there = obs.existing.has(w.path);
        const same = there && obs.files.get(w.stampFile)?.trim() === w.stamp;
        return verdict(
          "seed",
          w.vm.name,
          "cloud-init NoCloud seed",
          same
            ? []
            : [
                {
                  kind: "seed",
                  what: `write ${w.vm.name}'s cloud-init seed (hostname, login with the lab's key, pinned host key, addresses)`,
                  reason: there ? "what it says changed" : ABSENT,
                  undo: { kind: "path", path: w.path },
                  payload: w,
                },
              ],
          there ? "drifted" : "missing",
        );
      }),
    };
  },
};
