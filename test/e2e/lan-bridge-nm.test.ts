// The seed's section 2 on a real NetworkManager (1.42, in a `host` namespace on its own D-Bus bus):
// examples/lan-bridge.yaml with eth0 under a DHCP profile and under a static one. The host keeps its
// address through the move (at most 2 of the 10 ms pings lost), VMs lease from the LAN's router, a restart
// of NetworkManager leaves the lab alone, and down gives back the original profile exactly.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { REPO_ROOT } from "../helpers/golden.js";
import {
  type PingResult,
  pingFrom,
  settled,
  startPinger,
  startRouter,
  stopRouter,
} from "./helpers/lan.js";
import { addNetns, delNetns, qemuPids, qnetEnv, sh } from "./helpers/netns.js";
import {
  addrSnapshot,
  type NetworkManagerInstance,
  startNetworkManager,
} from "./helpers/network-manager.js";

const EXAMPLE = join(REPO_ROOT, "examples", "lan-bridge.yaml");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface StatusObject {
  kind: string;
  name: string;
  state: string;
  detail: string;
  addresses?: Array<{ nic: number; network: string; mac: string; ipv4: string[] }> | null;
}

const v4Of = (ns: string, dev: string) =>
  (
    JSON.parse(sh(["ip", "-n", ns, "-4", "-json", "addr", "show", "dev", dev])) as {
      addr_info: { local: string; prefixlen: number }[];
    }[]
  )[0]?.addr_info.map((a) => `${a.local}/${a.prefixlen}`) ?? [];

for (const mode of ["dhcp", "static"] as const) {
  describe(`lan-bridge on a NetworkManager host, eth0 ${mode}`, () => {
    const P = `qnt-nmlan-${mode === "dhcp" ? "d" : "s"}${process.pid}`;
    const LAN = `${P}-lan`;
    const HOST = `${P}-host`;
    const env = qnetEnv();
    const dir = mkdtempSync(join(tmpdir(), "qnt-nmlan-router-"));
    let nm: NetworkManagerInstance | null = null;
    let profilesBefore = "";
    let addrsBefore: unknown;
    let hostV4: string[] = [];
    let original = "";
    let upPing: PingResult;
    const vmIps: Record<string, string> = {};

    /** `qnet status --json` (it exits 1 when something is not present). */
    const statusJson = (drift = false): { ok: boolean; objects: StatusObject[] } => {
      const r = env.qnet(["status", "office", "--json"]);
      assert.equal(r.status, drift ? 1 : 0, `status:\n${r.stdout}${r.stderr}`);
      return JSON.parse(r.stdout);
    };
    const planChanges = (): { what: string; kind: string; object: string }[] => {
      const r = env.qnet(["plan", "--netns", HOST, EXAMPLE, "--json"]);
      assert.equal(r.status, 0, r.stderr);
      return JSON.parse(r.stdout).changes;
    };
    const devices = () =>
      new Map(
        nm!
          .nmcli(["-t", "-f", "DEVICE,STATE,CONNECTION", "device"])
          .split("\n")
          .filter(Boolean)
          .map((l) => {
            const [d, s, c] = l.split(":");
            return [d!, { state: s!, connection: c! }] as const;
          }),
      );
    const ports = () =>
      sh(["ip", "-n", HOST, "-o", "link", "show", "master", "br0"])
        .split("\n")
        .filter(Boolean)
        .map((l) => l.split(": ")[1]!.split("@")[0]!)
        .sort();
    const taps = () =>
      statusJson()
        .objects.filter((o) => o.kind === "tap")
        .map((o) => o.name);

    before(async () => {
      addNetns(LAN);
      addNetns(HOST);
      startRouter(LAN, HOST, dir, { configureHost: false });
      nm = await startNetworkManager(HOST, { mode });
      await settled(HOST);
      original = devices().get("eth0")!.connection;
      assert.equal(original, mode === "dhcp" ? "Wired connection 1" : "lan");
      assert.ok(pingFrom(HOST, "192.168.50.1"), "the router answers before up");
      profilesBefore = nm.nmcli(["-t", "connection", "show"]);
      addrsBefore = addrSnapshot(HOST);
      hostV4 = v4Of(HOST, "eth0");
      const pinger = startPinger(HOST, "192.168.50.1");
      await sleep(300);
      const r = env.qnet(["up", "--netns", HOST, EXAMPLE]);
      upPing = await pinger.stop();
      assert.equal(r.status, 0, `up failed:\n${r.stdout}${r.stderr}\n${nm.log().slice(-4000)}`);
      assert.match(r.stderr, /VM vm0: ready/);
      assert.match(r.stderr, /VM vm1: ready/);
    });

    after(async () => {
      env.qnet(["down", "office"]);
      await nm?.stop();
      stopRouter(dir);
      delNetns(HOST);
      delNetns(LAN);
      env.cleanup();
      rmSync(dir, { recursive: true, force: true });
    });

    test("at most 2 of the 10 ms pings to the router are lost during up", () => {
      console.log(
        `${mode}: ${upPing.sent} sent, ${upPing.received} received, longest gap ${upPing.maxGapMs} ms`,
      );
      assert.ok(upPing.sent > 100, `only ${upPing.sent} pings sent`);
      assert.ok(upPing.sent - upPing.received <= 2, `${upPing.sent - upPing.received} lost`);
    });

    test("the host keeps its address on br0; NetworkManager runs qnet's marked profiles", () => {
      assert.ok(hostV4.length > 0);
      assert.deepEqual(v4Of(HOST, "br0"), hostV4, "br0 holds eth0's address");
      assert.deepEqual(v4Of(HOST, "eth0"), [], "eth0 has none left");
      const d = devices();
      assert.deepEqual(d.get("br0"), { state: "connected", connection: "qnet-office-br0" });
      assert.deepEqual(d.get("eth0"), { state: "connected", connection: "qnet-office-eth0" });
      const br = JSON.parse(sh(["ip", "-n", HOST, "-d", "-json", "link", "show", "dev", "br0"]))[0];
      const eth0 = JSON.parse(sh(["ip", "-n", HOST, "-json", "link", "show", "dev", "eth0"]))[0];
      assert.equal(br.address, eth0.address, "br0 has eth0's MAC");
      assert.equal(br.linkinfo.info_data.stp_state, 0, "STP off");
      assert.deepEqual(ports(), ["eth0", ...taps()].sort(), "eth0 and the VMs' taps are its ports");
      // STP off: every port forwards from the moment it joins (the kernel ignores the forward delay).
      const states = JSON.parse(sh(["bridge", "-n", HOST, "-json", "link", "show"])) as {
        ifname: string;
        master?: string;
        state: string;
      }[];
      for (const p of states.filter((x) => x.master === "br0"))
        assert.equal(p.state, "forwarding", `${p.ifname} forwards`);
      // The profiles carry qnet's marks: the name prefix, a comment and user data in the keyfile.
      const keyfile = readFileSync(
        join(nm!.dir, "nm", "run", "system-connections", "qnet-office-br0.nmconnection"),
        "utf8",
      );
      assert.match(keyfile, /^# qnet: made by `qnet up` for lab office/);
      assert.match(keyfile, /\[user\]\nqnet\.lab=office\n/);
      const copied = nm!.nmcli([
        "-g",
        "bridge.stp,bridge.forward-delay,ipv4.method",
        "connection",
        "show",
        "qnet-office-br0",
      ]);
      assert.deepEqual(copied.trim().split("\n"), ["no", "0", mode === "dhcp" ? "auto" : "manual"]);
      if (mode === "dhcp") {
        // The pinned lease came off the device once br0 had its own: the address is a DHCP lease again.
        assert.match(sh(["ip", "-n", HOST, "-4", "addr", "show", "dev", "br0"]), /dynamic/);
      }
    });

    test("the taps are unmanaged: no NetworkManager profiles for them", () => {
      const d = devices();
      for (const t of taps()) assert.equal(d.get(t)?.state, "unmanaged", t);
      const profiles = nm!.nmcli(["-t", "-f", "NAME", "connection", "show"]);
      for (const t of taps()) assert.ok(!profiles.includes(t), profiles);
      const conf = readFileSync(join(nm!.dir, "nm", "run", "conf.d", "qnet-office.conf"), "utf8");
      for (const t of taps()) assert.ok(conf.includes(`interface-name:=${t}`), conf);
    });

    test("the VMs lease from the LAN's router and reach it; plan is empty, status healthy", async () => {
      let vms = statusJson().objects.filter((o) => o.kind === "vm");
      for (let i = 0; i < 20 && !vms.every((o) => o.addresses?.[0]?.ipv4.length); i++) {
        await sleep(1000);
        vms = statusJson().objects.filter((o) => o.kind === "vm");
      }
      const leases = readFileSync(join(dir, "leases"), "utf8");
      for (const o of vms) {
        const nic = o.addresses?.[0];
        assert.ok(nic, `${o.name}: ${o.detail}`);
        const m = /^192\.168\.50\.(\d+)\/24$/.exec(nic.ipv4[0] ?? "");
        assert.ok(m && Number(m[1]) >= 100 && Number(m[1]) <= 200, `${o.name} got ${nic.ipv4[0]}`);
        const ip = nic.ipv4[0]!.split("/")[0]!;
        assert.ok(leases.includes(`${nic.mac} ${ip} `), `the router leased ${ip} to ${nic.mac}`);
        vmIps[o.name] = ip;
        const r = env.qnet(["exec", "office", o.name, "--", "ping", "-c1", "-W3", "192.168.50.1"]);
        assert.equal(r.status, 0, `${o.name} -> router: ${r.stdout}${r.stderr}`);
      }
      assert.equal(Object.keys(vmIps).length, 2);
      const s = statusJson();
      assert.equal(s.ok, true, JSON.stringify(s.objects.filter((o) => o.state !== "present")));
      assert.deepEqual(planChanges(), []);
    });

    test("restarting and reloading NetworkManager leaves bridge, taps and the VMs' connectivity intact", async () => {
      const portsBefore = ports();
      const pid0 = nm!.pid();
      await nm!.restart();
      assert.notEqual(nm!.pid(), pid0, "a new NetworkManager");
      await sleep(2000);
      nm!.nmcli(["general", "reload"]);
      await sleep(1000);
      assert.deepEqual(ports(), portsBefore, "eth0 and the taps are still ports of br0");
      assert.deepEqual(v4Of(HOST, "br0"), hostV4);
      const d = devices();
      assert.equal(d.get("br0")?.connection, "qnet-office-br0");
      assert.equal(d.get("eth0")?.connection, "qnet-office-eth0");
      for (const t of taps()) assert.equal(d.get(t)?.state, "unmanaged", t);
      for (const [vm, ip] of Object.entries(vmIps)) {
        const r = env.qnet(["exec", "office", vm, "--", "ping", "-c1", "-W3", "192.168.50.1"]);
        assert.equal(r.status, 0, `${vm} -> router after the restart: ${r.stdout}${r.stderr}`);
        assert.ok(pingFrom(LAN, ip), `router -> ${vm}`);
      }
      assert.ok(pingFrom(HOST, "192.168.50.1"), "host -> router");
      const s = statusJson();
      assert.equal(s.ok, true, JSON.stringify(s.objects.filter((o) => o.state !== "present")));
      assert.deepEqual(planChanges(), []);
    });

    test("drift: a tap handed back to NetworkManager, qnet's conf.d file deleted; status names it, up repairs it", () => {
      const tap = taps()[0]!;
      nm!.nmcli(["device", "set", tap, "managed", "yes"]);
      rmSync(join(nm!.dir, "nm", "run", "conf.d", "qnet-office.conf"));
      sh(["sleep", "0.5"]);
      const bad = statusJson(true)
        .objects.filter((o) => o.state !== "present")
        .map((o) => `${o.kind} ${o.name}`);
      assert.deepEqual(bad, ["nm-unmanaged qnet-office.conf"]);
      assert.deepEqual(
        planChanges().map((c) => `${c.kind} ${c.object}`),
        ["nm-unmanaged qnet-office.conf", "nm-unmanaged qnet-office.conf"],
      );
      const r = env.qnet(["up", "--netns", HOST, EXAMPLE]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(devices().get(tap)?.state, "unmanaged");
      assert.equal(statusJson().ok, true);
      assert.deepEqual(planChanges(), []);
    });

    test("down gives eth0 its original profile back: nmcli -t c show and ip -json addr equal the snapshots", async () => {
      const r = env.qnet(["down", "office"]);
      assert.equal(r.status, 0, r.stderr);
      await settled(HOST);
      assert.equal(devices().get("eth0")?.connection, original);
      assert.equal(nm!.nmcli(["-t", "connection", "show"]), profilesBefore);
      assert.deepEqual(addrSnapshot(HOST), addrsBefore);
      assert.deepEqual(qemuPids("office"), []);
      assert.ok(pingFrom(HOST, "192.168.50.1"), "host -> router after down");
    });
  });
}
