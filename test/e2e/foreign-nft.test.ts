// A foreign nftables forward chain that drops (firewalld-style): qnet adds its accept rules there and
// takes back exactly those, even after the chain's owner reloaded its table (handles start over).
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, test } from "node:test";
import { REPO_ROOT } from "../helpers/golden.js";
import { addNetns, delNetns, qnetEnv, sh } from "./helpers/netns.js";

const ns = `qnt-fnft-${process.pid}`;
const env = qnetEnv();
after(() => {
  env.qnet(["down", "svc"]);
  delNetns(ns);
  env.cleanup();
});

const FOREIGN = `table inet fw {
  chain forward {
    type filter hook forward priority 0; policy drop;
    tcp dport 9999 accept comment "admin"
  }
}
`;
const nft = (...args: string[]) => sh(["ip", "netns", "exec", ns, "nft", ...args]);
const chain = () => nft("list", "chain", "inet", "fw", "forward");

test("accept rules go into the dropping chain and only they are removed, after a reload too", () => {
  addNetns(ns);
  sh(["ip", "netns", "exec", ns, "nft", "-f", "-"], FOREIGN);
  const up = env.qnet([
    "up",
    join(REPO_ROOT, "examples", "services.yaml"),
    "--netns",
    ns,
    "--no-vms",
  ]);
  assert.equal(up.status, 0, up.stderr);
  assert.match(chain(), /comment "qnet:svc /);

  // The owner reloads its table: same rules, handles numbered afresh; qnet's rules are gone with it.
  nft("delete", "table", "inet", "fw");
  sh(["ip", "netns", "exec", ns, "nft", "-f", "-"], FOREIGN);
  const r = env.qnet([
    "up",
    join(REPO_ROOT, "examples", "services.yaml"),
    "--netns",
    ns,
    "--no-vms",
  ]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(chain(), /comment "qnet:svc /, "up puts the accept rules back");

  assert.equal(env.qnet(["down", "svc"]).status, 0);
  const left = chain();
  assert.doesNotMatch(left, /qnet:svc/);
  assert.match(left, /tcp dport 9999 accept comment "admin"/, "down deleted the owner's rule");
});
