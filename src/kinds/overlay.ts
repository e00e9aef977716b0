// The disk of each `image` VM: a qcow2 overlay over the cached base image (the base is never written);
// made by up (building or downloading the image first), removed by down unless the VM persists.
import type { ImageRef } from "../model/images.js";
import type { Vm } from "../model/lab.js";
import { overlayPath } from "../model/paths.js";
import { ABSENT, type Kind, verdict } from "./types.js";

export interface WantOverlay {
  vm: Vm;
  path: string;
  image: ImageRef;
  persist: boolean;
}

export const imageName = (r: ImageRef) => (r.kind === "named" ? r.name : r.url);

export const overlayKind: Kind<WantOverlay> = {
  name: "overlay",
  desired: (env) =>
    env.vms
      ? env.lab.vms.flatMap((vm) =>
          vm.guest.kind === "image"
            ? [
                {
                  vm,
                  path: overlayPath(env.stateDir, env.dataDir, env.lab.name, vm),
                  image: vm.guest.image,
                  persist: vm.guest.persist,
                },
              ]
            : [],
        )
      : [],
  observe: (want) => ({ exists: want.map((w) => w.path) }),
  diff(want, obs) {
    return {
      verdicts: want.map((w) =>
        verdict(
          "overlay",
          w.vm.name,
          `over ${imageName(w.image)}${w.persist ? ", kept by down (persist)" : ""}: ${w.path}`,
          obs.existing.has(w.path)
            ? []
            : [
                {
                  kind: "overlay",
                  what: `make ${w.vm.name}'s disk: an overlay over image ${imageName(w.image)} (built or downloaded first if the cache has none)`,
                  reason: ABSENT,
                  // A persistent overlay outlives the lab on purpose: down keeps it.
                  undo: w.persist ? null : { kind: "path", path: w.path },
                  payload: w,
                },
              ],
          "missing",
        ),
      ),
    };
  },
};
