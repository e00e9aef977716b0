// Validation: every bad input of the topology file is reported with its message, file:line:column and field path.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { type Diagnostic, formatDiagnostic } from "../../src/errors.js";
import { renderNftRuleset } from "../../src/render/nftables.js";
import { compile, errorsOf, FILE, rejects, warningsOf } from "../helpers/topology.js";

/** 1-based line and column of the `nth` occurrence (0-based) of `needle` in `text`. */
function at(text: string, needle: string, nth = 0): { line: number; column: number } {
  let i = -1;
  for (let k = 0; k <= nth; k++) {
    i = text.indexOf(needle, i + 1);
    if (i < 0) throw new Error(`"${needle}" not in the test text`);
  }
  const before = text.slice(0, i).split("\n");
  return { line: before.length, column: before.at(-1)!.length + 1 };
}

/** The only error of `text`; fails (showing them all) if there are none or several. */
function onlyError(text: string): Diagnostic {
  const errors = errorsOf(text);
  assert.equal(
    errors.length,
    1,
    `expected one error, got:\n${errors.map(formatDiagnostic).join("\n")}`,
  );
  return errors[0]!;
}

/** Assert a diagnostic's file, path, position (of `needle` in `text`) and message. */
function located(
  d: Diagnostic,
  text: string,
  path: string,
  needle: string,
  message: RegExp,
  nth = 0,
) {
  assert.equal(d.file, FILE);
  assert.equal(d.path, path, formatDiagnostic(d));
  assert.deepEqual({ line: d.line, column: d.column }, at(text, needle, nth), formatDiagnostic(d));
  assert.match(d.message, message);
  // The printed form carries file:line:column and the path.
  assert.ok(
    formatDiagnostic(d).startsWith(`${FILE}:${d.line}:${d.column}: ${d.severity}: ${path}: `),
  );
}

const lab = (networks: string, vms: string) => `name: lab\nnetworks:\n${networks}vms:\n${vms}`;
const LAN = "  lan:\n    type: bridge\n    subnet: 10.0.2.0/24\n";
const VM0 = "  vm0:\n    nics:\n      - network: lan\n";

describe("validation: valid files", () => {
  test("the minimal bridge topology is valid with no diagnostic", () => {
    assert.deepEqual(errorsOf(lab(LAN, VM0)), []);
    assert.deepEqual(warningsOf(lab(LAN, VM0)), []);
  });
  test("JSON is accepted too", () => {
    const json = JSON.stringify({
      name: "lab",
      networks: { lan: { type: "bridge", subnet: "10.0.2.0/24" } },
      vms: { vm0: { nics: [{ network: "lan" }] } },
    });
    assert.equal(compile(json).lab.vms[0]!.nics[0]!.ip, "10.0.2.2");
  });
});

describe("validation: malformed YAML", () => {
  test("an unclosed flow sequence is located at the line the parser stops", () => {
    const text = "name: lab\nnetworks: [\nvms: {}\n";
    const errors = errorsOf(text);
    assert.ok(errors.length >= 1);
    for (const e of errors) {
      assert.match(e.message, /^malformed YAML: /);
      assert.ok(e.line >= 2 && e.line <= 4, formatDiagnostic(e));
      assert.ok(e.column >= 1);
    }
  });
  test("a bad indentation is located at the offending line and column", () => {
    const text =
      "name: lab\nnetworks:\n  lan:\n    type: bridge\n   subnet: 10.0.2.0/24\nvms: {}\n";
    const errors = errorsOf(text);
    assert.ok(errors.length >= 1);
    assert.match(errors[0]!.message, /^malformed YAML: /);
    assert.equal(errors[0]!.line, 5, formatDiagnostic(errors[0]!));
  });
  test("a file that is not a mapping is refused at 1:1", () => {
    const d = onlyError("- just\n- a list\n");
    assert.deepEqual([d.line, d.column, d.path], [1, 1, ""]);
    assert.match(d.message, /must be a mapping with `name`, `networks` and `vms`/);
  });
  test("an empty file is refused", () => {
    assert.match(onlyError("").message, /must be a mapping/);
  });
});

describe("validation: unknown keys", () => {
  test("a misspelt network key gets a did-you-mean, located at the key", () => {
    const text = lab("  lan:\n    type: bridge\n    subnett: 10.0.2.0/24\n", VM0);
    const errors = errorsOf(text);
    const d = errors.find((e) => e.path === "networks.lan.subnett");
    assert.ok(d, errors.map(formatDiagnostic).join("\n"));
    located(
      d,
      text,
      "networks.lan.subnett",
      "subnett",
      /unknown key "subnett" \(did you mean "subnet"\?\); allowed here: type, bridge, subnet/,
    );
  });
  test("a misspelt VM key", () => {
    const text = lab(LAN, `${VM0}    memroy: 512\n`);
    located(
      onlyError(text),
      text,
      "vms.vm0.memroy",
      "memroy",
      /unknown key "memroy" \(did you mean "memory"\?\)/,
    );
  });
  test("a misspelt NIC key", () => {
    const text = lab(LAN, "  vm0:\n    nics:\n      - network: lan\n        adress: 10.0.2.9\n");
    located(
      onlyError(text),
      text,
      "vms.vm0.nics[0].adress",
      "adress",
      /unknown key "adress"; allowed here: network, ip, mac, model/,
    );
  });
  test("a misspelt top-level key", () => {
    const text = `${lab(LAN, VM0)}nets: {}\n`;
    located(onlyError(text), text, "nets", "nets", /unknown key "nets" \(did you mean "netns"\?\)/);
  });
  test("an unknown network type lists the types", () => {
    const text = lab("  lan:\n    type: bridg\n    subnet: 10.0.2.0/24\n", VM0);
    located(
      onlyError(text),
      text,
      "networks.lan.type",
      "bridg\n",
      /network type "bridg" is not one of "user", "bridge", "bridged"/,
    );
  });
});

describe("validation: addresses", () => {
  const cidr = (subnet: string) => lab(`  lan:\n    type: bridge\n    subnet: ${subnet}\n`, VM0);
  for (const [subnet, why] of [
    ["10.0.2.0/33", /CIDR form/],
    ["10.0.2/24", /CIDR form/],
    ["10.0.2.0", /CIDR form/],
    ["10.0.2.1/24", /host bits are set; the network is 10\.0\.2\.0\/24/],
    ["10.0.2.0/31", /\/30 or shorter/],
  ] as const) {
    test(`invalid CIDR ${subnet}`, () => {
      const text = cidr(subnet);
      located(
        onlyError(text),
        text,
        "networks.lan.subnet",
        subnet,
        new RegExp(`found "${subnet.replaceAll(".", "\\.")}": .*${why.source}`),
      );
    });
  }
  const nic = (fields: string, networks = LAN) =>
    lab(networks, `  vm0:\n    nics:\n      - { network: lan, ${fields} }\n`);
  for (const ip of ["10.0.2.256", "10.0.2", "10.0.2.02", "0x0a.0.2.5", "fe80::1"]) {
    test(`invalid IP ${ip}`, () => {
      const text = nic(`ip: "${ip}"`);
      located(onlyError(text), text, "vms.vm0.nics[0].ip", `"${ip}"`, /expected an IPv4 address/);
    });
  }
  test("an IP outside its subnet", () => {
    const text = nic("ip: 10.0.3.5");
    located(
      onlyError(text),
      text,
      "vms.vm0.nics[0].ip",
      "10.0.3.5",
      /10\.0\.3\.5 is outside network lan's subnet 10\.0\.2\.0\/24/,
    );
  });
  test("an IP equal to the network address", () => {
    const text = nic("ip: 10.0.2.0");
    located(
      onlyError(text),
      text,
      "vms.vm0.nics[0].ip",
      "10.0.2.0 }",
      /is the network address of 10\.0\.2\.0\/24/,
    );
  });
  test("an IP equal to the broadcast address", () => {
    const text = nic("ip: 10.0.2.255");
    located(onlyError(text), text, "vms.vm0.nics[0].ip", "10.0.2.255", /is the broadcast address/);
  });
  test("an IP equal to the default gateway (first address)", () => {
    const text = nic("ip: 10.0.2.1");
    located(
      onlyError(text),
      text,
      "vms.vm0.nics[0].ip",
      "10.0.2.1 }",
      /is the gateway \(the host's address\) of network lan/,
    );
  });
  test("an IP equal to an explicit gateway", () => {
    const text = nic("ip: 10.0.2.254", `${LAN}    gateway: 10.0.2.254\n`);
    located(onlyError(text), text, "vms.vm0.nics[0].ip", "10.0.2.254 }", /is the gateway/);
  });
  test("the gateway's own address is accepted when the gateway is `none`", () => {
    assert.deepEqual(
      errorsOf(nic("ip: 10.0.2.1", `${LAN}    gateway: none\n    dhcp: false\n`)),
      [],
    );
  });
  test("a gateway outside the subnet", () => {
    const text = lab(`${LAN}    gateway: 10.0.9.1\n`, VM0);
    located(
      onlyError(text),
      text,
      "networks.lan.gateway",
      "10.0.9.1",
      /10\.0\.9\.1 is not a host address of 10\.0\.2\.0\/24/,
    );
  });
  test("a fixed IP on a user network is refused", () => {
    const text = lab(
      "  lan:\n    type: user\n",
      "  vm0:\n    nics:\n      - { network: lan, ip: 10.0.2.15 }\n",
    );
    located(
      onlyError(text),
      text,
      "vms.vm0.nics[0].ip",
      "10.0.2.15",
      /bridge networks only; network lan is of type user/,
    );
  });
  for (const mac of ["52:54:00:12:34", "52:54:00:12:34:5g", "52-54-00-12-34-56", "525400123456"]) {
    test(`invalid MAC ${mac}`, () => {
      const text = nic(`mac: "${mac}"`);
      located(
        onlyError(text),
        text,
        "vms.vm0.nics[0].mac",
        `"${mac}"`,
        /expected a MAC address such as 52:54:00:12:34:56/,
      );
    });
  }
  for (const mac of [
    "01:00:5e:00:00:01",
    "53:54:00:12:34:56",
    "ff:ff:ff:ff:ff:ff",
    "33:33:00:00:00:01",
  ]) {
    test(`multicast MAC ${mac}`, () => {
      const text = nic(`mac: "${mac}"`);
      located(
        onlyError(text),
        text,
        "vms.vm0.nics[0].mac",
        `"${mac}"`,
        /is a multicast address \(lowest bit of the first byte set\); a NIC needs a unicast MAC/,
      );
    });
  }
  test("the all-zero MAC", () => {
    const text = nic('mac: "00:00:00:00:00:00"');
    located(onlyError(text), text, "vms.vm0.nics[0].mac", '"00:00', /not a usable MAC/);
  });
});

describe("validation: duplicates", () => {
  test("duplicate IPs name the first owner and point at the second", () => {
    const text = lab(
      LAN,
      "  vm0:\n    nics: [{ network: lan, ip: 10.0.2.7 }]\n  vm1:\n    nics: [{ network: lan, ip: 10.0.2.7 }]\n",
    );
    located(
      onlyError(text),
      text,
      "vms.vm1.nics[0].ip",
      "10.0.2.7",
      /address 10\.0\.2\.7 is already used by vm0 NIC 0/,
      1,
    );
  });
  test("duplicate MACs are found whatever their case", () => {
    const text = lab(
      LAN,
      '  vm0:\n    nics: [{ network: lan, mac: "52:54:00:aa:bb:cc" }]\n  vm1:\n    nics: [{ network: lan, mac: "52:54:00:AA:BB:CC" }]\n',
    );
    located(
      onlyError(text),
      text,
      "vms.vm1.nics[0].mac",
      '"52:54:00:AA',
      /MAC 52:54:00:AA:BB:CC is already used by vm0 NIC 0/,
    );
  });
  test("duplicate VM names (a YAML duplicate key) are located at the second key with its path", () => {
    const text = lab(LAN, `${VM0}  vm0:\n    nics: []\n`);
    located(
      onlyError(text),
      text,
      "vms.vm0",
      "vm0",
      /duplicate key "vm0" \(a name may appear only once\)/,
      1,
    );
  });
  test("duplicate network names too", () => {
    const text = lab(`${LAN}${LAN}`, VM0);
    located(
      onlyError(text),
      text,
      "networks.lan",
      "lan:",
      /duplicate key "lan" \(a name may appear only once\)/,
      1,
    );
  });
  test("duplicate explicit bridge names", () => {
    const text = lab(
      `${LAN}    bridge: br0\n  lan2:\n    type: bridge\n    subnet: 10.0.3.0/24\n    bridge: br0\n`,
      VM0,
    );
    located(
      onlyError(text),
      text,
      "networks.lan2.bridge",
      "br0",
      /interface name "br0" is already used by the bridge of network lan/,
      1,
    );
  });
  test("a bridge named like another network's uplink", () => {
    const text = lab(`  wan:\n    type: bridged\n    uplink: eth0\n${LAN}    bridge: eth0\n`, VM0);
    const d = onlyError(text);
    assert.equal(d.path, "networks.lan.bridge");
    assert.match(d.message, /interface name "eth0" is already used by the uplink of network wan/);
  });
  test("duplicate host ports between bridge forwards", () => {
    const text = lab(`${LAN}    forwards: ["tcp:8022:vm0:22", "tcp:8022:vm0:80"]\n`, VM0);
    located(
      onlyError(text),
      text,
      "networks.lan.forwards[1]",
      '"tcp:8022:vm0:80"',
      /host port tcp 8022 is already forwarded by network lan forward 0/,
    );
  });
  test("the same host port on tcp and udp is no clash", () => {
    assert.deepEqual(
      errorsOf(lab(`${LAN}    forwards: ["tcp:8022:vm0:22", "udp:8022:vm0:22"]\n`, VM0)),
      [],
    );
  });
  test("a user-network forward repeated by two VMs (two QEMU stacks) clashes", () => {
    const text = lab(
      '  u:\n    type: user\n    forwards: ["tcp:2222:22"]\n',
      "  a: { nics: [{ network: u }] }\n  b: { nics: [{ network: u }] }\n",
    );
    located(
      onlyError(text),
      text,
      "networks.u.forwards[0]",
      '"tcp:2222:22"',
      /host port tcp 2222 is already forwarded by network u forward 0 of VM a/,
    );
  });
  test("a forward on 0.0.0.0 clashes with one on 127.0.0.1", () => {
    const text = lab(`${LAN}    forwards: ["tcp:0.0.0.0:8022:vm0:22", "tcp:8022:vm0:80"]\n`, VM0);
    assert.equal(errorsOf(text).length, 1);
    assert.match(errorsOf(text)[0]!.message, /already forwarded/);
  });
});

describe("validation: networks", () => {
  test("overlapping subnets between networks", () => {
    const text = lab(`${LAN}  lan2:\n    type: bridge\n    subnet: 10.0.0.0/16\n`, VM0);
    located(
      onlyError(text),
      text,
      "networks.lan2.subnet",
      "10.0.0.0/16",
      /subnet overlaps network lan's \(10\.0\.2\.0\/24\)/,
    );
  });
  test("adjacent subnets do not overlap", () => {
    assert.deepEqual(
      errorsOf(lab(`${LAN}  lan2:\n    type: bridge\n    subnet: 10.0.3.0/24\n`, VM0)),
      [],
    );
  });
  for (const [fw, why] of [
    ["tcp:70000:vm0:22", /host port "70000" is not a port number 1-65535/],
    ["tcp:0:vm0:22", /host port "0" is not a port number 1-65535/],
    ["tcp:8022:vm0:65536", /guest port "65536" is not a port number 1-65535/],
    ["tcp:8022:vm0:-1", /guest port "-1" is not a port number/],
    ["sctp:8022:vm0:22", /host address "sctp" is not an IPv4 address/],
    [
      "tcp:8022:22",
      /expected \[proto:\]\[hostaddr:\]hostport:vm:guestport, e\.g\. tcp:2222:vm0:22/,
    ],
    ["tcp:1.2.3:8022:vm0:22", /host address "1\.2\.3" is not an IPv4 address/],
  ] as const) {
    test(`a bad bridge forward ${fw}`, () => {
      const text = lab(`${LAN}    forwards: ["${fw}"]\n`, VM0);
      located(
        onlyError(text),
        text,
        "networks.lan.forwards[0]",
        `"${fw}"`,
        new RegExp(`found "${fw.replaceAll(".", "\\.")}": ${why.source}`),
      );
    });
  }
  test("a user forward with a port out of range", () => {
    const text = lab(
      '  u:\n    type: user\n    forwards: ["tcp:2222:99999"]\n',
      "  a: { nics: [{ network: u }] }\n",
    );
    located(
      onlyError(text),
      text,
      "networks.u.forwards[0]",
      '"tcp:2222:99999"',
      /guest port "99999" is not a port number 1-65535/,
    );
  });
  test("a forward to an unknown VM, with a did-you-mean", () => {
    const text = lab(`${LAN}    forwards: ["tcp:8022:vm9:22"]\n`, VM0);
    located(
      onlyError(text),
      text,
      "networks.lan.forwards[0]",
      '"tcp:8022',
      /targets unknown VM "vm9" \(did you mean "vm0"\?\)/,
    );
  });
  test("an unknown network reference, with a did-you-mean and the defined networks", () => {
    const text = lab(LAN, "  vm0:\n    nics:\n      - network: lna\n");
    located(
      onlyError(text),
      text,
      "vms.vm0.nics[0].network",
      "lna",
      /unknown network "lna" \(did you mean "lan"\?\); defined: lan/,
    );
  });
  test("an interface name longer than 15 bytes (IFNAMSIZ)", () => {
    const text = lab(`${LAN}    bridge: br-0123456789abc\n`, VM0);
    located(
      onlyError(text),
      text,
      "networks.lan.bridge",
      "br-0123456789abc",
      /1-15 bytes of \[A-Za-z0-9_\.-\] \(IFNAMSIZ; they reach command lines and config files unquoted\)/,
    );
  });
  test("exactly 15 bytes is accepted", () => {
    assert.deepEqual(errorsOf(lab(`${LAN}    bridge: br-0123456789ab\n`, VM0)), []);
  });
  for (const bad of ["br 0", "br0;reboot", "br$(id)", "brü", "-br0x", "br,0", 'br"0']) {
    test(`an interface name with other characters: ${JSON.stringify(bad)}`, () => {
      const text = lab(`${LAN}    bridge: ${JSON.stringify(bad)}\n`, VM0);
      const errors = errorsOf(text);
      // "-br0x" is made of allowed characters: only check the ones that are not.
      if (/^[A-Za-z0-9_.-]+$/.test(bad)) return assert.deepEqual(errors, []);
      located(
        onlyError(text),
        text,
        "networks.lan.bridge",
        JSON.stringify(bad),
        /reach command lines and config files/,
      );
    });
  }
  test("a bridged network's uplink with bad characters", () => {
    const text = lab(
      "  wan:\n    type: bridged\n    uplink: eth0 x\n",
      "  vm0: { nics: [{ network: wan }] }\n",
    );
    located(onlyError(text), text, "networks.wan.uplink", "eth0 x", /IFNAMSIZ/);
  });
  test("a VM name with a comma is refused at the key", () => {
    const text = lab(LAN, '  "vm,0":\n    nics: [{ network: lan }]\n');
    located(
      onlyError(text),
      text,
      'vms["vm,0"]',
      '"vm,0"',
      /the name "vm,0" is not allowed: a VM name must be 1-63 characters/,
    );
  });
  test("a missing required field is located at its parent, with the field's path", () => {
    const text = lab("  lan:\n    type: bridge\n", VM0);
    located(
      onlyError(text),
      text,
      "networks.lan.subnet",
      "type",
      /required field is missing \(expected string\)/,
    );
  });
  test("a network without a type", () => {
    const text = lab("  lan:\n    subnet: 10.0.2.0/24\n", VM0);
    located(
      onlyError(text),
      text,
      "networks.lan.type",
      "subnet",
      /a network needs a type, one of "user", "bridge", "bridged"/,
    );
  });
});

describe("validation: warnings and collection", () => {
  test("a VM with no NIC is a warning, and the file compiles", () => {
    const text = lab(LAN, `${VM0}  lonely:\n    nics: []\n`);
    const w = warningsOf(text);
    assert.equal(w.length, 1);
    located(
      w[0]!,
      text,
      "vms.lonely.nics",
      "[]",
      /the VM has no NIC: it will not be on any network/,
    );
    const { lab: l, warnings } = compile(text);
    assert.equal(warnings.length, 1);
    assert.equal(l.vms.length, 2);
  });
  test("a privileged host port and a forward bound to every interface warn but do not fail", () => {
    const text = lab(`${LAN}    forwards: ["tcp:80:vm0:80", "tcp:0.0.0.0:8443:vm0:443"]\n`, VM0);
    const { warnings } = compile(text);
    assert.equal(warnings.length, 2);
    located(
      warnings[0]!,
      text,
      "networks.lan.forwards[0]",
      '"tcp:80:',
      /host port 80 is privileged/,
    );
    located(
      warnings[1]!,
      text,
      "networks.lan.forwards[1]",
      '"tcp:0.0.0.0',
      /binds every host interface/,
    );
  });
  test("a file with 5 errors reports all 5, each located", () => {
    const text = lab(
      `${LAN}  lan2:\n    type: bridge\n    subnet: 10.0.2.128/25\n`,
      [
        "  vm0:",
        "    nics:",
        "      - { network: lan, ip: 10.0.9.9 }",
        '      - { network: lan, mac: "01:00:00:00:00:01" }',
        "      - { network: nowhere }",
        "  vm1:",
        "    nics:",
        "      - { network: lan, ip: 10.0.2.255 }",
        "",
      ].join("\n"),
    );
    const errors = errorsOf(text);
    assert.deepEqual(
      errors.map((e) => e.path),
      [
        "networks.lan2.subnet",
        "vms.vm0.nics[0].ip",
        "vms.vm0.nics[1].mac",
        "vms.vm0.nics[2].network",
        "vms.vm1.nics[0].ip",
      ],
    );
    for (const e of errors) assert.ok(e.line > 1 && e.column > 1, formatDiagnostic(e));
    assert.equal(rejects(text).filter((d) => d.severity === "error").length, 5);
  });
  test("schema errors are collected too (several unknown keys and bad types in one file)", () => {
    const text = lab(
      "  lan:\n    type: bridge\n    subnet: 10.0.2.0/24\n    dhcp: yes-please\n",
      "  vm0:\n    nics: [{ network: lan }]\n    memory: lots\n    cpu: 2\n",
    );
    const paths = errorsOf(text).map((e) => e.path);
    assert.deepEqual(paths.sort(), ["networks.lan.dhcp", "vms.vm0.cpu", "vms.vm0.memory"]);
  });
  test("the ValidationError message lists errors only, one formatted line each", () => {
    const text = lab(
      LAN,
      "  vm0:\n    nics: [{ network: lan, ip: 1.2.3.4 }]\n  vm1:\n    nics: []\n",
    );
    try {
      compile(text);
      assert.fail("accepted");
    } catch (e) {
      assert.equal((e as Error).name, "ValidationError");
      assert.equal(
        (e as Error).message,
        `${FILE}:8:32: error: vms.vm0.nics[0].ip: 1.2.3.4 is outside network lan's subnet 10.0.2.0/24`,
      );
    }
  });
});

describe("errors of both passes at once", () => {
  test("reports shape errors and the semantic errors of the entries whose shape is right", () => {
    const text = `name: lab
networks:
  lan: { type: bridge, subnet: 10.0.2.0/24, bogus: 1 }
  wan: { type: bridge, subnet: 10.0.3.0/24 }
vms:
  vm0: { nics: [{ network: lan, ip: 10.0.2.2 }], memory: "x" }
  vm1: { nics: [{ network: wan, ip: 10.0.9.9 }, { network: nope }, { network: lan }] }
`;
    const errs = errorsOf(text);
    assert.deepEqual(
      errs.map((d) => d.path),
      ["networks.lan.bogus", "vms.vm0.memory", "vms.vm1.nics[0].ip", "vms.vm1.nics[1].network"],
    );
    assert.match(errs[3]!.message, /unknown network "nope".*defined: lan, wan/);
  });
});

describe("defects found by trying qnet as a new user would", () => {
  test("a 62-character lab name validates and every renderer takes it (nft table name included)", () => {
    const name = `l${"a".repeat(61)}`;
    const { lab } = compile(
      `name: ${name}\nnetworks:\n  lan: { type: bridge, subnet: 10.0.2.0/24, nat: true, forwards: ["tcp:8022:vm0:22"] }\nvms:\n  vm0: { nics: [{ network: lan }] }\n`,
    );
    assert.equal(lab.name.length, 62);
    assert.match(
      renderNftRuleset(lab, { defaultUplink: "eth0" })!,
      new RegExp(`table ip qnet-${name} \\{`),
    );
  });

  test("gateway: none without a dhcp key means no DHCP and static addresses; only dhcp: true is an error", () => {
    const text = (dhcp: string) =>
      `name: l2\nnetworks:\n  lan:\n    type: bridge\n    subnet: 10.0.2.0/24\n    gateway: none\n${dhcp}vms:\n  vm0: { nics: [{ network: lan }] }\n`;
    const { lab } = compile(text(""));
    const net = lab.networks[0]!;
    assert.ok(net.type === "bridge" && net.dhcp === false && net.gateway === null);
    assert.equal(lab.vms[0]!.nics[0]!.ip, "10.0.2.1", "a static address from the whole subnet");
    const [e] = errorsOf(text("    dhcp: true\n"));
    assert.equal(e!.path, "networks.lan.dhcp");
    assert.match(e!.message, /DHCP needs the host on the network/);
  });

  test("names a plain object would take from its prototype: __proto__ is refused, located; others are names", () => {
    const [e] = rejects(
      "name: lab\nnetworks:\n  __proto__: { type: bridge, subnet: 10.0.0.0/24 }\nvms:\n  vm0: { nics: [{ network: __proto__ }] }\n",
    );
    assert.equal(e!.line, 3);
    assert.match(e!.message, /may not be named "__proto__"/);
    const unknown = errorsOf(
      "name: lab\nnetworks: {}\nvms:\n  vm0: { nics: [{ network: hasOwnProperty }, { network: toString }] }\n",
    );
    assert.deepEqual(
      unknown.map((d) => d.path),
      ["vms.vm0.nics[0].network", "vms.vm0.nics[1].network"],
    );
    assert.match(unknown[0]!.message, /unknown network "hasOwnProperty"/);
    const { lab } = compile(
      "name: constructor\nnetworks:\n  constructor: { type: bridge, subnet: 10.0.0.0/24, forwards: ['tcp:8022:toString:22'] }\nvms:\n  toString: { nics: [{ network: constructor }] }\n",
    );
    assert.deepEqual(
      lab.vms.map((v) => [v.name, v.nics[0]!.network]),
      [["toString", "constructor"]],
    );
  });
});
