// Validation of `image`, `sshUser`, `persist` and `sshKey` on VMs: accepted forms, and each bad one located.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { formatDiagnostic } from "../../src/errors.js";
import { compile, errorsOf } from "../helpers/topology.js";

const SHA = "a".repeat(64);
const file = (vm: string) =>
  `name: lab\nnetworks:\n  lan: { type: bridge, subnet: 10.0.2.0/24 }\nvms:\n  vm0:\n${vm}`;
const NIC = "    nics: [{ network: lan }]\n";

/** The errors of a VM body, as "path: message" lines with their line:column. */
function errors(vm: string) {
  return errorsOf(file(vm)).map((d) => ({
    at: `${d.line}:${d.column}`,
    path: d.path,
    msg: d.message,
    text: formatDiagnostic(d),
  }));
}

describe("image VMs: accepted", () => {
  test("a known image name, with sshUser and persist", () => {
    const { lab } = compile(
      file(`    image: debian-12\n    sshUser: alice\n    persist: true\n${NIC}`),
    );
    assert.deepEqual(lab.vms[0]!.guest, {
      kind: "image",
      image: { kind: "named", name: "debian-12" },
      sshKey: null,
      sshUser: "alice",
      persist: true,
    });
  });
  test("a URL with its sha256 (upper case hex is normalised)", () => {
    const { lab } = compile(
      file(
        `    image: { url: "https://example.org/x.qcow2", sha256: "${SHA.toUpperCase()}" }\n${NIC}`,
      ),
    );
    const g = lab.vms[0]!.guest;
    assert.equal(g.kind, "image");
    assert.deepEqual(g.kind === "image" && g.image, {
      kind: "url",
      url: "https://example.org/x.qcow2",
      sha256: SHA,
    });
    assert.equal(g.kind === "image" && g.sshUser, "qnet");
    assert.equal(g.kind === "image" && g.persist, false);
  });
  test("a disk VM gets the default login qnet", () => {
    const { lab } = compile(file(`    disk: /d.qcow2\n${NIC}`));
    assert.deepEqual(lab.vms[0]!.guest, {
      kind: "disk",
      disk: "/d.qcow2",
      sshKey: null,
      sshUser: "qnet",
    });
  });
});

describe("image VMs: refused, each error located", () => {
  test("an unknown image name lists the known ones, with a did-you-mean", () => {
    const [e, ...rest] = errors(`    image: debian-21\n${NIC}`);
    assert.equal(rest.length, 0);
    assert.equal(e!.path, "vms.vm0.image");
    assert.equal(e!.at, "6:12");
    assert.match(
      e!.msg,
      /unknown image "debian-21" \(did you mean "debian-12"\?\); known: debian-12, debian-13/,
    );
  });
  test("a URL without sha256", () => {
    const [e] = errors(`    image: { url: "https://example.org/x.qcow2" }\n${NIC}`);
    assert.equal(e!.path, "vms.vm0.image");
    assert.match(e!.msg, /an image URL needs `sha256`/);
  });
  test("a sha256 that is not 64 hex digits, and a file: URL", () => {
    const es = errors(`    image: { url: "file:///etc/shadow", sha256: "abc" }\n${NIC}`);
    assert.deepEqual(
      es.map((e) => e.path),
      ["vms.vm0.image.url", "vms.vm0.image.sha256"],
    );
    assert.match(es[0]!.msg, /scheme file: is not allowed/);
    assert.match(es[1]!.msg, /expected 64 hex digits/);
  });
  test("image together with disk or kernel", () => {
    const [e] = errors(`    disk: /d.qcow2\n    image: debian-12\n${NIC}`);
    assert.equal(e!.path, "vms.vm0.image");
    assert.match(e!.msg, /give one of `kernel`, `disk` or `image`, not `disk` and `image`/);
  });
  test("a NIC model the image's cloud kernel cannot drive (e1000)", () => {
    const [e] = errors(`    image: debian-12\n    nics: [{ network: lan, model: e1000 }]\n`);
    assert.equal(e!.path, "vms.vm0.nics[0].model");
    assert.match(
      e!.msg,
      /image debian-12 has no driver for NIC model "e1000"; it drives virtio-net-pci/,
    );
  });
  test("sshUser: root, bad characters, or without disk/image", () => {
    assert.match(errors(`    image: debian-12\n    sshUser: root\n${NIC}`)[0]!.msg, /not root/);
    assert.equal(
      errors(`    image: debian-12\n    sshUser: "a b"\n${NIC}`)[0]!.path,
      "vms.vm0.sshUser",
    );
    assert.match(errors(`    sshUser: alice\n${NIC}`)[0]!.msg, /needs `disk` or `image`/);
  });
  test("persist without image, sshKey without disk or image", () => {
    assert.match(
      errors(`    disk: /d.qcow2\n    persist: true\n${NIC}`)[0]!.msg,
      /`persist` keeps an `image` VM's overlay/,
    );
    assert.match(
      errors(`    sshKey: "ssh-ed25519 AAAA x"\n${NIC}`)[0]!.msg,
      /cloud-init seed of a `disk` or `image` VM/,
    );
  });
  test("an unknown key inside image gets a located error", () => {
    const [e] = errors(`    image: { url: "https://e.org/x", sha256: "${SHA}", size: 3 }\n${NIC}`);
    assert.equal(e!.path, "vms.vm0.image.size");
  });
});
