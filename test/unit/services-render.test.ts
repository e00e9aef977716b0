// Network services renderers: dnsmasq config and nftables table (goldens), firewall accept rules, parsers.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { forwardDrops, parseIptablesSave, parseNftRuleset } from "../../src/facts/firewall.js";
import type { BridgeNetwork, Lab } from "../../src/model/lab.js";
import { renderDnsmasqConf } from "../../src/render/dnsmasq-conf.js";
import { acceptRules, iptablesSpec, nftRuleText } from "../../src/render/forward-accept.js";
import { natNeeds, renderNftRuleset } from "../../src/render/nftables.js";
import { assertGolden, REPO_ROOT } from "../helpers/golden.js";
import { compile } from "../helpers/topology.js";

const STATE = "/run/qnet/svc";
const services = compile(readFileSync(join(REPO_ROOT, "examples", "services.yaml"), "utf8")).lab;

/** Two networks: one private (no NAT) with a forward bound to a LAN address, one NAT'd with a named uplink. */
const mixed = compile(`
name: my_lab
networks:
  priv:
    type: bridge
    subnet: 192.168.50.0/24
    forwards: ["tcp:192.168.1.10:8080:web:80", "udp:5353:db:53"]
  out:
    type: bridge
    subnet: 10.20.0.0/16
    nat: true
    uplink: eth1
  l2:
    type: bridge
    subnet: 10.30.0.0/24
    gateway: none
    dhcp: false
vms:
  web: { nics: [{ network: priv }, { network: out }] }
  db: { nics: [{ network: priv, ip: 192.168.50.77 }, { network: l2 }] }
`).lab;

const bridge = (lab: Lab, name: string) =>
  lab.networks.find((n): n is BridgeNetwork => n.type === "bridge" && n.name === name)!;

test("dnsmasq config golden: services example (NAT)", () => {
  assertGolden(
    "dnsmasq-services-lan.conf",
    renderDnsmasqConf(services, bridge(services, "lan"), STATE),
  );
});

test("dnsmasq config golden: private network (no NAT, no router)", () => {
  const conf = renderDnsmasqConf(mixed, bridge(mixed, "priv"), "/run/qnet/my_lab");
  assertGolden("dnsmasq-mixed-priv.conf", conf);
  assert.match(conf, /^dhcp-option=option:router$/m);
  assert.match(conf, /^no-resolv$/m);
  assert.match(conf, /^dhcp-host=52:54:00:[0-9a-f:]{8},192\.168\.50\.77,db$/m);
  assert.match(conf, /^host-record=db,db\.my_lab,192\.168\.50\.77$/m);
});

test("dnsmasq config: bound to the bridge only, no ping, authoritative, state in the state dir", () => {
  const net = bridge(services, "lan");
  const conf = renderDnsmasqConf(services, net, STATE);
  for (const d of [
    `interface=${net.bridge}`,
    "bind-dynamic",
    "except-interface=lo",
    "listen-address=10.10.0.1",
    "no-ping",
    "dhcp-authoritative",
    `pid-file=${STATE}/dnsmasq-lan.pid`,
    "dhcp-option=option:router,10.10.0.1",
  ]) {
    assert.ok(conf.split("\n").includes(d), `missing ${d}`);
  }
  // Every non-comment line is a directive (nothing unexpected, never an empty value smuggled in).
  for (const l of conf.split("\n")) {
    if (l === "" || l.startsWith("#")) continue;
    assert.match(l, /^[a-z-]+(=[A-Za-z0-9_.:,/-]*)?$/, l);
  }
});

test("dnsmasq config refuses unsafe values instead of emitting them", () => {
  const net = bridge(services, "lan");
  const evil = { ...services, name: "svc\nconf-file=/etc/shadow" };
  assert.throws(() => renderDnsmasqConf(evil, net, STATE), /not a valid name/);
  assert.throws(
    () => renderDnsmasqConf(services, { ...net, bridge: "br0\nport=1" }, STATE),
    /unsafe/,
  );
  assert.throws(() => renderDnsmasqConf(services, net, "/tmp/x\ny"), /unsafe/);
  assert.throws(() => renderDnsmasqConf(services, { ...net, gateway: null }, STATE), /no DHCP/);
});

test("nftables golden: services example (masquerade via default route, loopback forward)", () => {
  const text = renderNftRuleset(services, { defaultUplink: "eth0" });
  assert.ok(text);
  assertGolden("nft-services.nft", text);
  assert.match(text, /^\s+ip saddr 10\.10\.0\.0\/24 oifname "eth0" masquerade$/m);
  // 127.0.0.1 never arrives from outside: output chain only.
  assert.doesNotMatch(text, /chain prerouting/);
  assert.match(text, /ip daddr 127\.0\.0\.1 tcp dport 8022 dnat to 10\.10\.0\.2:22/);
});

test("nftables golden: two networks, named uplink, LAN-bound forward, no default route", () => {
  const text = renderNftRuleset(mixed, { defaultUplink: null });
  assert.ok(text);
  assertGolden("nft-mixed.nft", text);
  assert.match(text, /ip saddr 10\.20\.0\.0\/16 oifname "eth1" masquerade/);
  assert.match(
    text,
    /chain prerouting[^}]*ip daddr 192\.168\.1\.10 tcp dport 8080 dnat to 192\.168\.50\.2:80/s,
  );
});

test("nftables: no NAT and no forwards, no table; NAT without any uplink stays off its own subnet", () => {
  const l2 = compile(`
name: quiet
networks: { n: { type: bridge, subnet: 10.1.0.0/24 } }
vms: { a: { nics: [{ network: n }] } }
`).lab;
  assert.equal(renderNftRuleset(l2, { defaultUplink: "eth0" }), null);
  const natOnly = compile(`
name: q2
networks: { n: { type: bridge, subnet: 10.1.0.0/24, nat: true } }
vms: { a: { nics: [{ network: n }] } }
`).lab;
  const br = bridge(natOnly, "n").bridge;
  assert.match(
    renderNftRuleset(natOnly, { defaultUplink: null })!,
    new RegExp(
      `ip saddr 10\\.1\\.0\\.0/24 ip daddr != 10\\.1\\.0\\.0/24 oifname != "${br}" masquerade`,
    ),
  );
});

test("what the host must switch on", () => {
  assert.deepEqual(natNeeds(services), {
    ipForward: true,
    routeLocalnet: [bridge(services, "lan").bridge],
  });
  const n = natNeeds(mixed);
  assert.equal(n.ipForward, true);
  assert.deepEqual(n.routeLocalnet, [bridge(mixed, "priv").bridge]);
});

test("accept rules: exactly what each network needs", () => {
  const br = bridge(services, "lan").bridge;
  const keys = acceptRules(services).map((r) => r.key);
  assert.deepEqual(keys, [`${br}:intra`, `${br}:out`, `${br}:back`]);
  const priv = bridge(mixed, "priv").bridge;
  assert.deepEqual(
    acceptRules(mixed)
      .map((r) => r.key)
      .filter((k) => k.startsWith(priv)),
    [`${priv}:intra`, `${priv}:dnat`, `${priv}:reply`],
  );
  const dnat = acceptRules(mixed).find((r) => r.key === `${priv}:dnat`)!;
  assert.deepEqual(iptablesSpec("my_lab", dnat), [
    "-o",
    priv,
    "-m",
    "conntrack",
    "--ctstate",
    "DNAT",
    "-m",
    "comment",
    "--comment",
    `qnet:my_lab ${priv}:dnat`,
    "-j",
    "ACCEPT",
  ]);
  assert.equal(
    nftRuleText("my_lab", dnat),
    `oifname "${priv}" ct status dnat accept comment "qnet:my_lab ${priv}:dnat"`,
  );
});

test("iptables-save parsing: policy, Docker chains, catch-all reject, qnet's comments", () => {
  const docker = [
    "# Generated by iptables-save",
    "*nat",
    ":PREROUTING ACCEPT [0:0]",
    "COMMIT",
    "*filter",
    ":INPUT ACCEPT [0:0]",
    ":FORWARD DROP [0:0]",
    ":OUTPUT ACCEPT [0:0]",
    ":DOCKER - [0:0]",
    ":DOCKER-USER - [0:0]",
    '-A DOCKER-USER -i br0 -o br0 -m comment --comment "qnet:lab br0:intra" -j ACCEPT',
    "-A FORWARD -j DOCKER-USER",
    "-A DOCKER-USER -j RETURN",
    "COMMIT",
  ].join("\n");
  const d = parseIptablesSave(docker, "nft")!;
  assert.equal(d.forwardPolicy, "DROP");
  assert.ok(d.chains.includes("DOCKER-USER"));
  const [drop] = forwardDrops({ iptables: [d], nft: null });
  assert.deepEqual(drop!.target, {
    type: "iptables",
    variant: "nft",
    bin: "iptables-nft",
    chain: "DOCKER-USER",
  });
  assert.deepEqual([...drop!.comments], ["qnet:lab br0:intra"]);
  assert.deepEqual(drop!.owners, ["Docker"]);
  const reject = parseIptablesSave(
    "*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -i lo -j ACCEPT\n-A FORWARD -j REJECT --reject-with icmp-host-prohibited\nCOMMIT\n",
    "legacy",
  )!;
  assert.equal(reject.forwardCatchAllDrop, true);
  assert.equal(forwardDrops({ iptables: [reject], nft: null })[0]!.target.type, "iptables");
  const open = parseIptablesSave(
    "*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -i x -j DROP\nCOMMIT\n",
    "legacy",
  )!;
  assert.deepEqual(forwardDrops({ iptables: [open], nft: null }), []);
  assert.equal(parseIptablesSave("", "nft"), null);
});

test("nft ruleset parsing: native forward chains that drop, iptables-nft and qnet tables excluded", () => {
  const json = JSON.stringify({
    nftables: [
      { metainfo: { version: "1.0.6" } },
      { chain: { family: "inet", table: "fw", name: "fwd", hook: "forward", policy: "drop" } },
      { chain: { family: "inet", table: "fw2", name: "fwd", hook: "forward", policy: "accept" } },
      { rule: { family: "inet", table: "fw2", chain: "fwd", expr: [{ reject: null }] } },
      { chain: { family: "inet", table: "fw3", name: "fwd", hook: "forward", policy: "accept" } },
      {
        chain: { family: "ip", table: "filter", name: "FORWARD", hook: "forward", policy: "drop" },
      },
      { chain: { family: "ip", table: "qnet-x", name: "f", hook: "forward", policy: "drop" } },
      {
        rule: {
          family: "inet",
          table: "fw",
          chain: "fwd",
          comment: "qnet:x a",
          expr: [{ accept: null }],
        },
      },
    ],
  });
  const chains = forwardDrops({ iptables: [], nft: parseNftRuleset(json) }, "qnet-x");
  assert.deepEqual(
    chains.map((c) => c.target.type === "nft" && c.target.table),
    ["fw", "fw2"],
  );
  assert.ok(chains[0]!.comments.has("qnet:x a"));
});
