// `dns: host`: the lab's namespace resolves the VMs by name while the lab is up, and not after down.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { REPO_ROOT } from "../helpers/golden.js";
import { addNetns, delNetns, qnetEnv, sh } from "./helpers/netns.js";

const ns = `qnt-dnsh-${process.pid}`;
const env = qnetEnv();
after(() => {
  env.qnet(["down", "svc"]);
  delNetns(ns);
  env.cleanup();
});

test("names resolve in the lab's namespace while up; /etc/hosts is never touched", () => {
  const hostsBefore = readFileSync("/etc/hosts", "utf8");
  addNetns(ns);
  const up = env.qnet([
    "up",
    join(REPO_ROOT, "examples", "services.yaml"),
    "--netns",
    ns,
    "--no-vms",
  ]);
  assert.equal(up.status, 0, up.stderr);
  assert.match(
    sh(["ip", "netns", "exec", ns, "getent", "hosts", "vm1.svc"]),
    /^10\.10\.0\.3\s+vm1\.svc vm1/,
  );
  assert.match(sh(["ip", "netns", "exec", ns, "getent", "hosts", "vm0"]), /^10\.10\.0\.2\s/);
  assert.equal(env.qnet(["down", "svc"]).status, 0);
  assert.equal(existsSync(`/etc/netns/${ns}`), false);
  assert.equal(readFileSync("/etc/hosts", "utf8"), hostsBefore);
});
