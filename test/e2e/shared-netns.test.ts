// Two labs in one namespace that the first one created: the first `down` leaves the namespace, the
// forwarding switch and the other lab's names alone; the last `down` removes them.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { delNetns, qnetEnv, sh } from "./helpers/netns.js";

const ns = `qnt-share-${process.pid}`;
const env = qnetEnv();
const dir = mkdtempSync(join(tmpdir(), "qnet-share-"));
const lab = (name: string, octet: number) => {
  const f = join(dir, `${name}.yaml`);
  writeFileSync(
    f,
    `name: ${name}\nnetworks:\n  lan: { type: bridge, subnet: 10.${octet}.0.0/24, nat: true, dns: host }\nvms:\n  vm0: { nics: [{ network: lan }] }\n`,
  );
  return f;
};
after(() => {
  env.qnet(["down", "one"]);
  env.qnet(["down", "two"]);
  delNetns(ns);
  env.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

const nsList = () => sh(["ip", "netns", "list"]);
const forwarding = () =>
  sh(["ip", "netns", "exec", ns, "sysctl", "-n", "net.ipv4.ip_forward"]).trim();

test("namespace-wide changes are taken back by the last lab to go down", () => {
  assert.equal(env.qnet(["up", lab("one", 61), "--netns", ns, "--no-vms"]).status, 0);
  assert.equal(env.qnet(["up", lab("two", 62), "--netns", ns, "--no-vms"]).status, 0);
  assert.equal(forwarding(), "1");
  assert.match(sh(["ip", "netns", "exec", ns, "getent", "hosts", "vm0.two"]), /^10\.62\.0\.2\s/);

  const down1 = env.qnet(["down", "one"]);
  assert.equal(down1.status, 0, down1.stderr);
  assert.match(
    nsList(),
    new RegExp(`^${ns}\\b`, "m"),
    "the first down deleted a namespace another lab uses",
  );
  assert.equal(forwarding(), "1", "the first down turned forwarding off under the other lab");
  assert.match(sh(["ip", "netns", "exec", ns, "getent", "hosts", "vm0.two"]), /^10\.62\.0\.2\s/);
  assert.equal(JSON.parse(env.qnet(["status", "two", "--json"]).stdout).ok, true);

  const down2 = env.qnet(["down", "two"]);
  assert.equal(down2.status, 0, down2.stderr);
  assert.doesNotMatch(nsList(), new RegExp(`^${ns}\\b`, "m"));
  assert.equal(existsSync(`/etc/netns/${ns}`), false);
});

test("a lab that is up cannot be brought up again in another namespace", () => {
  assert.equal(env.qnet(["up", lab("three", 63), "--netns", ns, "--no-vms"]).status, 0);
  const again = env.qnet(["up", lab("three", 63), "--no-vms"]);
  assert.equal(again.status, 2);
  assert.match(
    again.stderr,
    /lab three is up in network namespace qnt-share-\d+, not the host's namespace/,
  );
  assert.equal(env.qnet(["down", "three"]).status, 0);
});
