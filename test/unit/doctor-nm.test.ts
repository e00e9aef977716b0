// doctor on NetworkManager hosts, pure: device specs and the merged configuration, and the findings from facts.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { nmFindings } from "../../src/doctor/network-manager.js";
import { parseNmConfig, specMatches, unmanagedBy } from "../../src/facts/nm-config.js";
import type { NmFacts } from "../../src/facts/types.js";
import { compileTopology } from "../../src/load/compile.js";

const br0 = { name: "br0", type: "bridge" };

describe("NetworkManager device specs", () => {
  it("matches names (globs, literal), types, `*`, and lets except: win", () => {
    assert.equal(specMatches("interface-name:br*", br0), true);
    assert.equal(specMatches("interface-name:~b?0", br0), true);
    assert.equal(specMatches("interface-name:=br*", br0), false);
    assert.equal(specMatches("interface-name:=br0", br0), true);
    assert.equal(specMatches("br0", br0), true);
    assert.equal(specMatches("type:bridge", br0), true);
    assert.equal(specMatches("type:ethernet;mac:00:11:22:33:44:55", br0), false);
    assert.equal(specMatches("*", br0), true);
    assert.equal(specMatches("*,except:interface-name:br0", br0), false);
    assert.equal(specMatches("except:interface-name:eth0", br0), true, "only negatives: all but");
    assert.equal(specMatches("except:type:bridge", br0), false);
    assert.equal(specMatches("interface-name:eth\\,0, br0", br0), true);
  });

  it("finds what leaves a bridge unmanaged in --print-config output", () => {
    const cfg =
      parseNmConfig(`# NetworkManager configuration: /etc/NetworkManager/NetworkManager.conf
[main]
plugins=keyfile

[keyfile]
unmanaged-devices=interface-name:docker*;type:bridge

[device]
# wifi.backend=wpa_supplicant

[device-vms]
match-device=interface-name:br*
managed=0

[device-qnet-office]
match-device=interface-name:=qntap-1
managed=0
`);
    assert.deepEqual(unmanagedBy(cfg, br0), [
      "[keyfile] unmanaged-devices=interface-name:docker*;type:bridge",
      "[device-vms] match-device=interface-name:br* managed=0",
    ]);
    assert.deepEqual(unmanagedBy(cfg, { name: "eth0", type: "ethernet" }), []);
    assert.deepEqual(
      unmanagedBy(cfg, { name: "qntap-1", type: "tun" }, (s) => s.startsWith("device-qnet-")),
      [],
    );
  });
});

describe("doctor findings on a NetworkManager host", () => {
  const lab = compileTopology(
    "name: office\nnetworks:\n  lan: { type: bridged, uplink: eth0, bridge: br0 }\nvms:\n  vm0: { nics: [{ network: lan }] }\n",
    "t.yaml",
  ).lab;
  const facts: NmFacts = {
    pid: 9,
    running: true,
    version: "1.42.4",
    devices: [
      {
        device: "eth0",
        type: "ethernet",
        state: "connected",
        profile: { id: "netplan-eth0", uuid: "u-eth0" },
      },
    ],
    connections: [
      {
        id: "netplan-eth0",
        uuid: "u-eth0",
        type: "802-3-ethernet",
        device: "eth0",
        filename: "/run/NetworkManager/system-connections/netplan-eth0.nmconnection",
      },
      { id: "br0", uuid: "u-br0", type: "bridge", device: null, filename: "/etc/x.nmconnection" },
    ],
    qnetConf: new Map(),
    config: null,
  };
  const byId = (r: ReturnType<typeof nmFindings>, id: string) => {
    const c = r.find((x) => x.id === id);
    assert.ok(c, `${id} in ${r.map((x) => x.id).join(", ")}`);
    return c;
  };

  it("without NetworkManager: one skipped check", () => {
    const r = nmFindings({ lab, netns: null, nm: null, bridges: new Map(), config: null });
    assert.deepEqual(
      r.map((c) => [c.id, c.status]),
      [["nm", "skip"]],
    );
  });

  it("a daemon that does not answer fails", () => {
    const r = nmFindings({
      lab,
      netns: "h",
      nm: { ...facts, running: false },
      bridges: new Map(),
      config: null,
    });
    assert.equal(byId(r, "nm").status, "fail");
  });

  it("STP on (30 s), the managed uplink, unmanaged-devices hiding the bridge, netplan", () => {
    const r = nmFindings({
      lab,
      netns: "h",
      nm: facts,
      bridges: new Map([["u-br0", { stp: "yes", forwardDelay: "15" }]]),
      config: parseNmConfig("[keyfile]\nunmanaged-devices=interface-name:br*\n"),
    });
    const stp = byId(r, "nm.bridge-stp");
    assert.equal(stp.status, "warn");
    assert.match(stp.detail, /"br0" \(forward delay 15 s\).*30 s/s);
    assert.match(stp.fix!, /nmcli connection modify "br0" bridge\.stp no/);
    const up = byId(r, "nm.uplink.lan");
    assert.equal(up.status, "pass");
    assert.match(up.detail, /through nmcli with profiles qnet-office-br0 .* and qnet-office-eth0/);
    const um = byId(r, "nm.unmanaged.lan");
    assert.equal(um.status, "fail");
    assert.match(um.detail, /unmanaged-devices=interface-name:br\*/);
    const np = byId(r, "nm.netplan");
    assert.equal(np.status, "warn");
    assert.match(np.detail, /netplan-eth0\.nmconnection, from \/etc\/netplan\/\*\.yaml/);
    assert.match(np.detail, /netplan apply/);
  });

  it("backend: iproute2 on an uplink NetworkManager manages warns; an external uplink warns", () => {
    const forced = compileTopology(
      "name: office\nnetworks:\n  lan: { type: bridged, uplink: eth0, bridge: br0, backend: iproute2 }\nvms:\n  vm0: { nics: [{ network: lan }] }\n",
      "t.yaml",
    ).lab;
    const r = nmFindings({ lab: forced, netns: null, nm: facts, bridges: new Map(), config: [] });
    assert.equal(byId(r, "nm.uplink.lan").status, "warn");
    assert.match(byId(r, "nm.uplink.lan").fix!, /remove `backend: iproute2`/);
    assert.equal(byId(r, "nm.bridge-stp").status, "pass");
    const ext = {
      ...facts,
      devices: [{ ...facts.devices[0]!, state: "connected (externally)" }],
    };
    const e = nmFindings({ lab, netns: null, nm: ext, bridges: new Map(), config: [] });
    assert.match(byId(e, "nm.uplink.lan").detail, /configured outside NetworkManager/);
  });
});
