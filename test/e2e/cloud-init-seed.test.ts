// A disk VM's seed image: an ISO 9660 volume labelled "cidata" holding the three NoCloud files.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { writeCloudInitSeed } from "../../src/host/cloud-init-seed.js";
import { renderCloudInit } from "../../src/render/cloud-init.js";
import { compile } from "../helpers/topology.js";

const dir = mkdtempSync(join(tmpdir(), "qnet-seed-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("the seed is a cidata ISO whose files are the rendered seed", async () => {
  const { lab } = compile(`name: lab
networks: { lan: { type: bridge, subnet: 10.0.2.0/24 } }
vms: { db: { disk: /images/db.qcow2, nics: [{ network: lan }] } }
`);
  const vm = lab.vms[0]!;
  const image = join(dir, "db.seed.img");
  await writeCloudInitSeed(lab, vm, image, dir);
  const info = execFileSync("isoinfo", ["-d", "-i", image], { encoding: "utf8" });
  assert.match(info, /Volume id: cidata/);
  const seed = renderCloudInit(lab, vm);
  for (const name of ["meta-data", "user-data", "network-config"] as const) {
    const content = execFileSync("isoinfo", ["-R", "-x", `/${name}`, "-i", image], {
      encoding: "utf8",
    });
    assert.equal(content, seed[name]);
  }
});
