// `qnet ssh-config`: one Host per VM with its pinned key; values quoted for ssh_config; the route to each VM.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  hostKeyAlias,
  knownHostsLine,
  renderSshConfig,
  type SshRoute,
  sshConfigValue,
} from "../../src/render/ssh-config.js";
import { sshLogin, sshRoute } from "../../src/resolve/ssh-route.js";
import { isPublicKeyLine } from "../../src/ssh/keys.js";
import { assertGolden } from "../helpers/golden.js";
import { compile } from "../helpers/topology.js";

const routes: SshRoute[] = [
  {
    vm: "vm0",
    hostName: "10.0.2.2",
    port: 22,
    user: "qnet",
    identityFile: "/run/qnet/lab/ssh/id_ed25519",
    knownHostsFile: "/run/qnet/lab/ssh/known_hosts",
    hostKeyAlias: hostKeyAlias("lab", "vm0"),
    via: "address on network lan",
  },
  {
    vm: "vm1",
    hostName: "127.0.0.1",
    port: 2222,
    user: "root",
    identityFile: null,
    knownHostsFile: "/home/a b/100%/known_hosts",
    hostKeyAlias: hostKeyAlias("lab", "vm1"),
    via: "user network wan forward tcp:2222:22",
  },
];

describe("ssh config renderer", () => {
  test("golden", () => assertGolden("ssh-config.lab.txt", renderSshConfig("lab", routes)));
  test("each Host pins its key by alias, with StrictHostKeyChecking yes", () => {
    const text = renderSshConfig("lab", routes);
    const blocks = text.split(/\n(?=Host )/).slice(1);
    assert.equal(blocks.length, 2);
    for (const b of blocks) {
      assert.match(b, /^ {2}StrictHostKeyChecking yes$/m);
      assert.match(b, /^ {2}UserKnownHostsFile /m);
      assert.match(b, /^ {2}HostKeyAlias qnet\.lab\.vm\d$/m);
    }
    assert.match(
      blocks[0]!,
      /IdentityFile \/run\/qnet\/lab\/ssh\/id_ed25519\n {2}IdentitiesOnly yes/,
    );
    assert.doesNotMatch(blocks[1]!, /IdentityFile/);
  });
  test("values: spaces quoted, % doubled; quotes and line breaks refused", () => {
    assert.equal(sshConfigValue("/a b/%x"), '"/a b/%%x"');
    assert.equal(sshConfigValue("/plain"), "/plain");
    assert.throws(() => sshConfigValue('/a"b'), /quote or control character/);
    assert.throws(() => sshConfigValue("/a\nHost evil"), /quote or control character/);
  });
  test("known_hosts line: alias, type and key, comment dropped", () => {
    assert.equal(
      knownHostsLine("qnet.lab.vm0", "ssh-ed25519 AAAAC3Nza qnet-host-vm0"),
      "qnet.lab.vm0 ssh-ed25519 AAAAC3Nza",
    );
    assert.throws(() => knownHostsLine("x", "garbage"));
  });
  test("public key lines are told from paths", () => {
    assert.ok(isPublicKeyLine("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample user@host"));
    assert.ok(!isPublicKeyLine("/home/u/.ssh/id_ed25519"));
    assert.ok(!isPublicKeyLine("ssh-ed25519 AAAA\nHost x"));
  });
});

describe("the route to a VM's SSH port", () => {
  const { lab } = compile(`name: lab
networks:
  lan: { type: bridge, subnet: 10.0.2.0/24, forwards: ["tcp:2200:c:22"] }
  l2: { type: bridge, subnet: 10.0.9.0/24, gateway: none, dhcp: false }
  wan: { type: user, forwards: ["tcp:0.0.0.0:2222:22"] }
  office: { type: bridged, uplink: eth9 }
  mv: { type: bridged, uplink: eth8, mode: macvtap }
vms:
  a: { image: debian-12, nics: [{ network: lan, ip: 10.0.2.5 }] }
  b: { nics: [{ network: l2, ip: 10.0.9.5 }, { network: wan }] }
  c: { nics: [{ network: l2, ip: 10.0.9.6 }, { network: lan }] }
  d: { nics: [{ network: office }] }
  e: { nics: [{ network: mv }] }
  f: { nics: [{ network: l2, ip: 10.0.9.7 }] }
`);
  const vm = (n: string) => lab.vms.find((v) => v.name === n)!;
  test("the VM's address on a bridge network where the host has one", () => {
    assert.deepEqual(sshRoute(lab, vm("a")), {
      ok: true,
      hostName: "10.0.2.5",
      port: 22,
      via: "address on network lan",
    });
  });
  test("a user-network forward to 22 (a wildcard bind is dialled on loopback)", () => {
    const r = sshRoute(lab, vm("b"));
    assert.ok(r.ok);
    assert.deepEqual([r.hostName, r.port], ["127.0.0.1", 2222]);
  });
  test("the bridge address wins over a forward; a bridged LAN address once the agent reported it", () => {
    const c = sshRoute(lab, vm("c"));
    assert.ok(c.ok && c.hostName.startsWith("10.0.2."));
    assert.equal(sshRoute(lab, vm("d")).ok, false);
    const d = sshRoute(lab, vm("d"), new Map([[0, "192.168.1.50"]]));
    assert.ok(d.ok && d.hostName === "192.168.1.50" && d.port === 22);
  });
  test("no route: the reason and what to add", () => {
    const e = sshRoute(lab, vm("e"), new Map([[0, "192.168.1.51"]]));
    assert.ok(!e.ok && /macvtap/.test(e.hint));
    const f = sshRoute(lab, vm("f"));
    assert.ok(!f.ok);
    assert.match(f.reason, /no route to VM f/);
    assert.match(f.hint, /forwards: \["tcp:2222:22"\]/);
  });
  test("the login: root on the built-in guest, the cloud-init user on images", () => {
    assert.equal(sshLogin(vm("a")), "qnet");
    assert.equal(sshLogin(vm("b")), "root");
  });
});
