// The cloud-init NoCloud seed of a disk VM: hostname, SSH key, network-config v2 matched by quoted MACs.
import assert from "node:assert/strict";
import { test } from "node:test";
import { parse } from "yaml";
import { renderCloudInit } from "../../src/render/cloud-init.js";
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
const seed = renderCloudInit(lab, vm);

test("user-data starts with #cloud-config and carries the hostname and SSH key", () => {
  assert.equal(seed["user-data"].split("\n")[0], "#cloud-config");
  const u = parse(seed["user-data"]);
  assert.equal(u.hostname, "db");
  assert.deepEqual(u.ssh_authorized_keys, [
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample user@host",
  ]);
});

test("meta-data names the instance after lab and VM", () => {
  const m = parse(seed["meta-data"]);
  assert.equal(m["instance-id"], "qnet-lab-db");
  assert.equal(m["local-hostname"], "db");
});

test("network-config v2: static where no DHCP serves, DHCP where it does, matched by MAC", () => {
  const n = parse(seed["network-config"]);
  assert.equal(n.version, 2);
  assert.deepEqual(n.ethernets.nic0, {
    match: { macaddress: "52:54:00:00:12:34" },
    "set-name": "eth0",
    dhcp4: false,
    addresses: ["10.0.5.7/24"],
    routes: [{ to: "0.0.0.0/0", via: "10.0.5.1" }],
  });
  assert.deepEqual(n.ethernets.nic1, {
    match: { macaddress: "52:54:00:00:56:78" },
    "set-name": "eth1",
    dhcp4: true,
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
