// The cloud-init NoCloud seed of disk and image VMs: login and keys, pinned host key, network-config v2 by MAC.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parse } from "yaml";
import { type GuestSsh, renderCloudInit } from "../../src/render/cloud-init.js";
import { assertGolden } from "../helpers/golden.js";
import { compile } from "../helpers/topology.js";

const { lab } = compile(`name: lab
networks:
  lan: { type: bridge, subnet: 10.0.2.0/24 }
  priv: { type: bridge, subnet: 10.0.5.0/24, dhcp: false }
vms:
  db:
    disk: /images/debian.qcow2
    sshKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample user@host"
    nics:
      - { network: priv, ip: 10.0.5.7, mac: "52:54:00:00:12:34" }
      - { network: lan, mac: "52:54:00:00:56:78" }
`);
const vm = lab.vms[0]!;

/** Fixed, fake key material: the goldens stay the same on every machine. */
const SSH: GuestSsh = {
  authorizedKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILabKey qnet-lab-lab"],
  hostKey: {
    privateKey:
      "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAAFakeHostKey\n-----END OPENSSH PRIVATE KEY-----\n",
    publicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKey qnet-host-db",
  },
};
const seed = renderCloudInit(lab, vm, SSH);

describe("cloud-init seed: user-data", () => {
  test("starts with #cloud-config; hostname; the login with every key and passwordless sudo", () => {
    assert.equal(seed["user-data"].split("\n")[0], "#cloud-config");
    const u = parse(seed["user-data"], { version: "1.1" });
    assert.equal(u.hostname, "db");
    assert.equal(u.users.length, 1);
    assert.equal(u.users[0].name, "qnet");
    assert.equal(u.users[0].sudo, "ALL=(ALL) NOPASSWD:ALL");
    assert.equal(u.users[0].lock_passwd, true);
    assert.deepEqual(u.users[0].ssh_authorized_keys, [
      "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILabKey qnet-lab-lab",
      "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample user@host",
    ]);
    assert.equal(u.ssh_pwauth, false);
    assert.equal(u.disable_root, true);
  });
  test("installs the pinned host key and generates no other", () => {
    const u = parse(seed["user-data"], { version: "1.1" });
    assert.equal(u.ssh_keys.ed25519_private, SSH.hostKey!.privateKey);
    assert.equal(u.ssh_keys.ed25519_public, SSH.hostKey!.publicKey);
    assert.equal(u.ssh_deletekeys, true);
    assert.deepEqual(u.ssh_genkeytypes, ["ed25519"]);
  });
  test("starts the guest agent", () => {
    const u = parse(seed["user-data"]);
    assert.deepEqual(u.bootcmd, [["systemctl", "--no-block", "start", "qemu-guest-agent.service"]]);
  });
  test("sshUser names the login", () => {
    const l = compile(`name: lab
networks: { lan: { type: bridge, subnet: 10.0.2.0/24 } }
vms: { v: { image: debian-12, sshUser: alice, nics: [{ network: lan }] } }
`).lab;
    const u = parse(renderCloudInit(l, l.vms[0]!, SSH)["user-data"]);
    assert.equal(u.users[0].name, "alice");
  });
  test("without keys from the lab, only the VM's own sshKey, and no ssh_keys", () => {
    const u = parse(renderCloudInit(lab, vm)["user-data"]);
    assert.deepEqual(u.users[0].ssh_authorized_keys, [
      "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample user@host",
    ]);
    assert.equal(u.ssh_keys, undefined);
  });
});

describe("cloud-init seed: meta-data", () => {
  test("names the instance after lab, VM and the seed's content", () => {
    const m = parse(seed["meta-data"]);
    assert.match(m["instance-id"], /^qnet-lab-db-[0-9a-f]{12}$/);
    assert.equal(m["local-hostname"], "db");
    // A changed seed is a new instance (a persistent disk applies it); the same seed is the same one.
    assert.equal(
      parse(renderCloudInit(lab, vm, SSH)["meta-data"])["instance-id"],
      m["instance-id"],
    );
    const other = renderCloudInit(lab, vm, { ...SSH, authorizedKeys: ["ssh-ed25519 AAAAother x"] });
    assert.notEqual(parse(other["meta-data"])["instance-id"], m["instance-id"]);
  });
});

describe("cloud-init seed: network-config v2", () => {
  test("static where no DHCP serves (with the default route), DHCP where it does, matched by MAC", () => {
    const n = parse(seed["network-config"]);
    assert.equal(n.version, 2);
    assert.deepEqual(n.ethernets.nic0, {
      match: { macaddress: "52:54:00:00:12:34" },
      "set-name": "eth0",
      dhcp4: false,
      addresses: ["10.0.5.7/24"],
      routes: [{ to: "0.0.0.0/0", via: "10.0.5.1" }],
    });
    // The default route is nic0's: the DHCP NIC after it installs no routes.
    assert.deepEqual(n.ethernets.nic1, {
      match: { macaddress: "52:54:00:00:56:78" },
      "set-name": "eth1",
      dhcp4: true,
      "dhcp4-overrides": { "use-domains": true, "use-routes": false },
    });
  });

  test("user and bridged networks use DHCP; the first DHCP NIC keeps its routes", () => {
    const l = compile(`name: lab
networks:
  wan: { type: user }
  lan: { type: bridged, uplink: eth0 }
vms: { v: { image: debian-12, nics: [{ network: wan }, { network: lan }] } }
`).lab;
    const n = parse(renderCloudInit(l, l.vms[0]!)["network-config"]);
    assert.equal(n.ethernets.nic0.dhcp4, true);
    assert.deepEqual(n.ethernets.nic0["dhcp4-overrides"], { "use-domains": true });
    assert.deepEqual(n.ethernets.nic1["dhcp4-overrides"], {
      "use-domains": true,
      "use-routes": false,
    });
  });

  test("MACs are quoted: a YAML 1.1 reader (cloud-init's) must not see a number", () => {
    // An all-digit MAC is where YAML 1.1 would read base-60 numbers.
    const digits = compile(`name: lab
networks: { lan: { type: bridge, subnet: 10.0.2.0/24 } }
vms: { v: { disk: /d.img, nics: [{ network: lan, mac: "52:54:00:00:00:10" }] } }
`).lab;
    const text = renderCloudInit(digits, digits.vms[0]!)["network-config"];
    assert.match(text, /macaddress: "52:54:00:00:00:10"/);
    assert.equal(
      parse(text, { version: "1.1" }).ethernets.nic0.match.macaddress,
      "52:54:00:00:00:10",
    );
  });
});

describe("cloud-init seed: golden files", () => {
  for (const name of ["meta-data", "user-data", "network-config"] as const) {
    test(name, () => assertGolden(`cloud-init.db.${name}`, seed[name]));
  }
});
