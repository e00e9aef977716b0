// Builds a disk-image VM's NoCloud seed (an ISO 9660 image labelled "cidata") in the lab's state directory.
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { CommandError, UserError } from "../errors.js";
import type { Lab, Vm } from "../model/lab.js";
import { type GuestSsh, renderCloudInit } from "../render/cloud-init.js";
import { writeFileAtomic } from "./files.js";

export async function writeCloudInitSeed(
  lab: Lab,
  vm: Vm,
  image: string,
  workDir: string,
  ssh?: GuestSsh,
): Promise<void> {
  const seed = renderCloudInit(lab, vm, ssh);
  const dir = join(workDir, `${vm.name}.seed`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const files = Object.keys(seed) as (keyof typeof seed)[];
  for (const name of files) writeFileAtomic(join(dir, name), seed[name]);
  const argv = [
    "genisoimage",
    "-quiet",
    "-output",
    image,
    "-volid",
    "cidata",
    "-joliet",
    "-rock",
    ...files.map((f) => join(dir, f)),
  ];
  const r = await execa(argv[0]!, argv.slice(1), { reject: false });
  rmSync(dir, { recursive: true, force: true });
  if (r.failed) {
    if ((r.cause as NodeJS.ErrnoException | undefined)?.code === "ENOENT") {
      throw new UserError(
        "genisoimage is needed to build the cloud-init seed of a disk VM",
        "apt-get install genisoimage",
      );
    }
    throw new CommandError(argv, r.exitCode ?? null, String(r.stderr));
  }
}
