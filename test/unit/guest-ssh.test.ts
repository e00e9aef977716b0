// The built-in guest's SSH server: /init starts dropbear from fw_cfg keys; QEMU args; initramfs accounts; fw_cfg module.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { execa } from "execa";
import { renderConfigureScript, renderInitScript } from "../../src/guest/init-script.js";
import { guestLayout } from "../../src/guest/layout.js";
import { parseModuleIndex, resolveModuleOrder, SSH_MODULES } from "../../src/guest/modules.js";
import { builtinSshArgs, FW_CFG_AUTHORIZED_KEYS, FW_CFG_HOST_KEY } from "../../src/guest/ssh.js";
import { assertGolden } from "../helpers/golden.js";

const opts = {
  modules: ["virtio_pci", "qemu_fw_cfg"],
  qemuGa: "/usr/sbin/qemu-ga",
  libDirs: ["/lib/x86_64-linux-gnu", "/lib64"],
};

describe("the configure script with dropbear (run by /init at boot and after a restore)", () => {
  const tmp = mkdtempSync(join(tmpdir(), "qnt-guest-ssh-"));
  after(() => rmSync(tmp, { recursive: true, force: true }));
  const script = renderConfigureScript({ dropbear: "/usr/sbin/dropbear", libDirs: opts.libDirs });

  it("busybox sh parses it", async () => {
    const f = join(tmp, "init");
    writeFileSync(f, script);
    await execa("/bin/busybox", ["sh", "-n", f]);
  });
  it("reads both keys from fw_cfg (non-empty: a template has none), password logins off", () => {
    const at = (s: string) => {
      const i = script.indexOf(s);
      assert.ok(i >= 0, `missing: ${s}`);
      return i;
    };
    assert.ok(at(`read -r hk < "$FW/${FW_CFG_HOST_KEY}/size"`) > at("/etc/hosts"));
    assert.ok(at(`$FW/${FW_CFG_HOST_KEY}/raw" > /etc/dropbear/host_key`) > 0);
    assert.ok(at(`$FW/${FW_CFG_AUTHORIZED_KEYS}/raw" > /root/.ssh/authorized_keys`) > 0);
    assert.ok(at("umask 077") < at("> /etc/dropbear/host_key"));
    assert.ok(at('kill "$old"') < at("/usr/sbin/dropbear -r /etc/dropbear/host_key -s -p 22"));
    assert.ok(!renderInitScript(opts).includes("dropbear"), "/init itself starts no server");
    assert.match(renderInitScript(opts), /configure\.sh \$\(cat \/proc\/cmdline\)/);
  });
  it("no dropbear, no SSH block", () => {
    assert.ok(!renderConfigureScript().includes("dropbear"));
  });
  it("refuses an unsafe dropbear path", () => {
    assert.throws(() => renderConfigureScript({ dropbear: "/usr/sbin/drop bear" }));
  });
});

describe("QEMU arguments", () => {
  it("two fw_cfg files, commas in paths doubled (golden)", () => {
    const argv = builtinSshArgs({
      hostKeyFile: "/run/qnet/a,b/ssh/host-vm0_ed25519.dropbear",
      authorizedKeysFile: "/run/qnet/lab/ssh/vm0.authorized_keys",
    });
    assertGolden("guest-ssh.args.txt", `${argv.join("\n")}\n`);
    assert.deepEqual(
      argv.filter((_, i) => i % 2 === 0),
      ["-fw_cfg", "-fw_cfg"],
    );
    assert.match(argv[1]!, /^name=opt\/qnet\/ssh_host_key,file=\/run\/qnet\/a,,b\//);
  });
});

describe("initramfs", () => {
  const files = {
    initScript: "#!/bin/busybox sh\n",
    configureScript: "#!/bin/sh\n",
    udhcpcScript: "#!/bin/sh\n",
    busybox: Buffer.from("bb"),
    modules: [],
    qemuGa: { path: "/usr/sbin/qemu-ga", data: Buffer.from("ga") },
    libs: [],
  };
  it("with dropbear: the binary and root's account (passwd, group)", () => {
    const paths = guestLayout({
      ...files,
      dropbear: { path: "/usr/sbin/dropbear", data: Buffer.from("db") },
    })
      .filter((e) => e.type === "file")
      .map((e) => e.path);
    for (const p of ["/usr/sbin/dropbear", "etc/passwd", "etc/group"])
      assert.ok(paths.includes(p), p);
  });
  it("without: neither", () => {
    const paths = guestLayout(files).map((e) => e.path);
    assert.ok(!paths.includes("etc/passwd"));
  });
});

describe("modules", () => {
  it("qemu_fw_cfg is loaded for SSH, and its absence is an error naming it", () => {
    const dep =
      "kernel/drivers/virtio/virtio_pci.ko:\nkernel/drivers/char/virtio_console.ko:\nkernel/drivers/net/virtio_net.ko:\n";
    const withFw = parseModuleIndex(`${dep}kernel/drivers/firmware/qemu_fw_cfg.ko:\n`);
    assert.ok(
      resolveModuleOrder(withFw, ["virtio-net-pci"], "k", SSH_MODULES).includes("qemu_fw_cfg"),
    );
    assert.throws(
      () => resolveModuleOrder(parseModuleIndex(dep), ["virtio-net-pci"], "k", SSH_MODULES),
      /no qemu_fw_cfg module/,
    );
  });
});
