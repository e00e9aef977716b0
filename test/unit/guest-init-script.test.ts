// Tests for the built-in guest's kernel command line, /init and udhcpc script rendering.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { execa } from "execa";
import {
  BASE_CMDLINE,
  GUEST_CONFIGURE_SCRIPT,
  guestCmdline,
  guestParams,
  READY_PREFIX,
  renderConfigureScript,
  renderInitScript,
  renderUdhcpcScript,
  restoreParams,
} from "../../src/guest/init-script.js";

const base = BASE_CMDLINE.join(" ");

describe("guestCmdline", () => {
  it("renders hostname, static and DHCP NICs in order, and DNS", () => {
    const line = guestCmdline({
      hostname: "vm-0",
      nics: [
        {
          mac: "52:54:00:AA:bb:01",
          ip: "10.10.0.2",
          prefix: 24,
          gateway: "10.10.0.1",
          dhcp: false,
        },
        { mac: "52:54:00:aa:bb:02", ip: null, prefix: null, gateway: null, dhcp: true },
        { mac: "52:54:00:aa:bb:03", ip: "192.168.5.9", prefix: 30, gateway: null, dhcp: false },
        { mac: "52:54:00:aa:bb:04", ip: null, prefix: null, gateway: null, dhcp: false },
      ],
      dns: "10.10.0.1",
    });
    assert.equal(
      line,
      `${base} qnet.hostname=vm-0 qnet.nic0=52:54:00:aa:bb:01,10.10.0.2/24,10.10.0.1 ` +
        "qnet.nic1=52:54:00:aa:bb:02,dhcp qnet.nic2=52:54:00:aa:bb:03,192.168.5.9/30 " +
        "qnet.nic3=52:54:00:aa:bb:04,none qnet.dns=10.10.0.1",
    );
    assert.ok(line.startsWith("console=ttyS0 quiet panic=-1"));
  });

  it("omits DNS when none is given", () => {
    assert.equal(guestCmdline({ hostname: "a", nics: [], dns: null }), `${base} qnet.hostname=a`);
  });

  it("throws on values with spaces, shell metacharacters or bad syntax", () => {
    const nic = {
      mac: "52:54:00:00:00:01",
      ip: "10.0.0.2",
      prefix: 24,
      gateway: null,
      dhcp: false,
    };
    const bad: Array<Parameters<typeof guestCmdline>[0]> = [
      { hostname: "a b", nics: [] },
      { hostname: "a;reboot", nics: [] },
      { hostname: "$(id)", nics: [] },
      { hostname: "", nics: [] },
      { hostname: "a", nics: [{ ...nic, mac: "52:54:00:00:00:01 x" }] },
      { hostname: "a", nics: [{ ...nic, mac: "52:54:00:00:00" }] },
      { hostname: "a", nics: [{ ...nic, ip: "10.0.0.256" }] },
      { hostname: "a", nics: [{ ...nic, ip: "10.0.0.2 init=/bin/sh" }] },
      { hostname: "a", nics: [{ ...nic, prefix: 33 }] },
      { hostname: "a", nics: [{ ...nic, prefix: 1.5 }] },
      { hostname: "a", nics: [{ ...nic, gateway: "10.0.0.1`x`" }] },
      { hostname: "a", nics: [], dns: "8.8.8.8;x" },
    ];
    for (const p of bad) assert.throws(() => guestCmdline(p), Error, JSON.stringify(p));
  });
});

describe("renderInitScript", () => {
  const tmp = mkdtempSync(join(tmpdir(), "qnt-guest-init-"));
  after(() => rmSync(tmp, { recursive: true, force: true }));
  const script = renderInitScript({
    modules: ["virtio_ring", "virtio", "virtio_pci", "virtio_net", "virtio_console"],
    qemuGa: "/usr/sbin/qemu-ga",
    libDirs: ["/lib/x86_64-linux-gnu", "/lib64"],
  });

  it("is a busybox sh script that busybox sh parses", async () => {
    assert.ok(script.startsWith("#!/bin/busybox sh\n"));
    const f = join(tmp, "init");
    writeFileSync(f, script);
    await execa("/bin/busybox", ["sh", "-n", f]);
    const u = join(tmp, "udhcpc.sh");
    writeFileSync(u, renderUdhcpcScript());
    await execa("/bin/busybox", ["sh", "-n", u]);
    const c = join(tmp, "configure.sh");
    writeFileSync(c, renderConfigureScript());
    await execa("/bin/busybox", ["sh", "-n", c]);
  });

  it("mounts, installs applets, loads modules, configures, and starts the agent before the ready line", () => {
    const at = (s: string) => {
      const i = script.indexOf(s);
      assert.ok(i >= 0, `missing: ${s}`);
      return i;
    };
    assert.ok(at("mount -t proc") < at("--install -s"));
    assert.ok(at("mount -t devtmpfs") < at("--install -s"));
    assert.ok(
      at("for m in virtio_ring virtio virtio_pci virtio_net virtio_console; do") >
        at("--install -s"),
    );
    assert.ok(at(`${GUEST_CONFIGURE_SCRIPT} $(cat /proc/cmdline)`) > at("insmod"));
    const ready = `echo "${READY_PREFIX} $(hostname)"`;
    assert.ok(at("/usr/sbin/qemu-ga -m virtio-serial") < at(ready));
    assert.ok(at(`${GUEST_CONFIGURE_SCRIPT} $(cat /proc/cmdline)`) < at(ready));
    assert.ok(at("-p /dev/virtio-ports/org.qemu.guest_agent.0") > 0);
    assert.ok(at("LD_LIBRARY_PATH=/lib/x86_64-linux-gnu:/lib64") > 0);
    assert.ok(at("setsid cttyhack sh") > at(ready));
    assert.equal(script.split(`echo "${READY_PREFIX}`).length, 2, "exactly one ready line");
  });

  it("refuses unsafe module names or paths", () => {
    assert.throws(() => renderInitScript({ modules: ["a;b"], qemuGa: "/q", libDirs: [] }));
    assert.throws(() => renderInitScript({ modules: [], qemuGa: "/q ga", libDirs: [] }));
  });

  it("the configure script reads the words the way guestParams and restoreParams write them", async () => {
    // Run the argument parsing of the configure script with busybox sh, as /init and a restore call it.
    const words = [
      ...BASE_CMDLINE,
      ...guestParams({
        hostname: "web-1",
        nics: [
          {
            mac: "52:54:00:00:00:01",
            ip: "10.0.0.2",
            prefix: 24,
            gateway: "10.0.0.1",
            dhcp: false,
          },
          { mac: "52:54:00:00:00:02", ip: null, prefix: null, gateway: null, dhcp: true },
        ],
        dns: "10.0.0.1",
      }),
      ...restoreParams(["52:54:00:00:aa:01", "52:54:00:00:aa:02"], new Date(0)).filter(
        (w) => !w.startsWith("qnet.time="),
      ),
    ];
    const configure = renderConfigureScript();
    const parsing = configure.slice(
      configure.indexOf("HOSTNAME=qnet-guest"),
      configure.indexOf('case "$HOSTNAME"'),
    );
    const probe = `${parsing}
for nic in $NICS; do
  set -f; old_ifs=$IFS; IFS=,; set -- $nic; IFS=$old_ifs; set +f
  echo "nic mac=$1 addr=$2 gw=$3"
done
echo "host=$HOSTNAME dns=$DNS was=$WAS"
`;
    const r = await execa("/bin/busybox", ["sh", "-c", probe, "configure", ...words]);
    assert.equal(
      r.stdout,
      [
        "nic mac=52:54:00:00:00:01 addr=10.0.0.2/24 gw=10.0.0.1",
        "nic mac=52:54:00:00:00:02 addr=dhcp gw=",
        "host=web-1 dns=10.0.0.1 was= 52:54:00:00:aa:01 52:54:00:00:aa:02",
      ].join("\n"),
    );
    assert.equal(
      guestCmdline({ hostname: "a", nics: [] }),
      [...BASE_CMDLINE, "qnet.hostname=a"].join(" "),
    );
  });
});
