// The rules of a VM's `image`, `sshKey`, `sshUser` and `persist`: what they need and what they refuse.
import {
  imageUrlProblem,
  knownImage,
  knownImageNames,
  SHA256_RE,
  SSH_USER_RE,
} from "../model/images.js";
import type { VmSpec } from "../model/schema.js";
import type { PathSegment } from "./parse.js";
import { didYouMean, type Emit, show } from "./schema-issues.js";

export function imageRules(spec: VmSpec, base: PathSegment[], emit: Emit): void {
  const seeded = spec.disk !== undefined || spec.image !== undefined;
  if (spec.sshKey !== undefined && !seeded) {
    emit([...base, "sshKey"], "`sshKey` goes into the cloud-init seed of a `disk` or `image` VM");
  }
  if (spec.sshUser !== undefined) {
    if (!seeded)
      emit([...base, "sshUser"], "`sshUser` is created by cloud-init: it needs `disk` or `image`");
    else if (!SSH_USER_RE.test(spec.sshUser) || spec.sshUser === "root")
      emit(
        [...base, "sshUser"],
        `found ${show(spec.sshUser)}; a login is 1-32 characters of [a-z0-9_-] starting with a letter or _, not root (it reaches cloud-init's YAML, sudoers and ssh)`,
      );
  }
  if (spec.persist !== undefined && spec.image === undefined) {
    emit([...base, "persist"], "`persist` keeps an `image` VM's overlay; this VM has no `image`");
  }
  const image = spec.image;
  if (image === undefined) return;
  if (typeof image === "string") {
    const known = knownImage(image);
    if (!known) {
      const guess = didYouMean(image, knownImageNames());
      emit(
        [...base, "image"],
        `unknown image ${show(image)}${guess ? ` (did you mean "${guess}"?)` : ""}; known: ${knownImageNames().join(", ")}, or { url, sha256 } for a downloaded one`,
      );
      return;
    }
    spec.nics.forEach((nic, i) => {
      if (nic.model !== undefined && !known.nicModels.includes(nic.model))
        emit(
          [...base, "nics", i, "model"],
          `image ${known.name} has no driver for NIC model ${show(nic.model)}; it drives ${known.nicModels.join(", ")}`,
        );
    });
    return;
  }
  const urlProblem = imageUrlProblem(image.url);
  if (urlProblem) emit([...base, "image", "url"], `found ${show(image.url)}: ${urlProblem}`);
  if (image.sha256 === undefined)
    emit(
      [...base, "image"],
      "an image URL needs `sha256`: qnet verifies every download (`sha256sum FILE` prints it)",
    );
  else if (!SHA256_RE.test(image.sha256))
    emit([...base, "image", "sha256"], `found ${show(image.sha256)}; expected 64 hex digits`);
}
