// Golden files of the export renderers (shell script, libvirt XML) and the imported seed files; the XML
// is checked by libvirt's own schemas (virt-xml-validate) and hostile values by xmllint. The CLI too.
// Regenerate with QNET_UPDATE_GOLDEN=1 (npm run golden:update), then read the diff carefully.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { renderLibvirt } from "../../src/export/libvirt.js";
import { renderShellScript } from "../../src/export/shell.js";
import { escapeAttr, renderXml } from "../../src/export/xml.js";
import { importScript } from "../../src/import/index.js";
import { assertGolden, REPO_ROOT } from "../helpers/golden.js";
import { compile, runCli } from "../helpers/topology.js";

const TMP = mkdtempSync(join(tmpdir(), "qnet-export-test-"));
after(() => rmSync(TMP, { recursive: true, force: true }));
const BUILTIN = {
  kernel: "/var/lib/libvirt/boot/qnet-vmlinux",
  initrd: "/var/lib/libvirt/boot/qnet-initrd.img",
};

const examples = readdirSync(join(REPO_ROOT, "examples"))
  .filter((f) => f.endsWith(".yaml"))
  .map((f) => f.slice(0, -5))
  .sort();

function validate(file: string): void {
  const r = spawnSync("virt-xml-validate", [file], { encoding: "utf8" });
  assert.equal(r.status, 0, `virt-xml-validate ${file}: ${r.stderr}${r.stdout}`);
}

for (const name of examples) {
  describe(`export: examples/${name}.yaml`, () => {
    const file = `examples/${name}.yaml`;
    const { lab } = compile(readFileSync(join(REPO_ROOT, file), "utf8"), file);
    test("shell script", () =>
      assertGolden(
        `export/${name}.sh`,
        renderShellScript(lab, {
          stateDir: `/run/qnet/${lab.name}`,
          source: file,
          facts: { kvm: false, vhost: false },
        }),
      ));
    test("shell script passes sh -n", () => {
      const f = join(TMP, `${name}.sh`);
      writeFileSync(
        f,
        renderShellScript(lab, {
          stateDir: "/run/qnet/x",
          source: file,
          facts: { kvm: true, vhost: true },
        }),
      );
      const r = spawnSync("sh", ["-n", f], { encoding: "utf8" });
      assert.equal(r.status, 0, r.stderr);
    });
    for (const f of renderLibvirt(lab, { source: file, facts: { kvm: false }, builtin: BUILTIN })) {
      test(`libvirt ${f.name}`, () => {
        assertGolden(`export/${name}.libvirt/${f.name}`, f.content);
        if (f.name.endsWith(".xml")) {
          const p = join(TMP, `${name}-${f.name}`);
          writeFileSync(p, f.content);
          validate(p);
        }
      });
    }
  });
}

describe("imported seed files (golden)", () => {
  for (const [n, lab] of [
    ["1", "web"],
    ["2", "office"],
    ["3", "lab"],
    ["3-with-guests", "lab"],
  ] as const) {
    test(`section ${n}`, async () => {
      const r = await importScript(
        readFileSync(join(REPO_ROOT, "test", "fixtures", "seed", `section${n}.sh`), "utf8"),
        `section${n}.sh`,
        { name: lab },
      );
      assertGolden(`import/seed-section${n}.yaml`, r.yaml);
    });
  }
});

test("a classic how-to script (legacy -net, JSON options, -nic, a disk, unmodelled options)", async () => {
  const r = await importScript(
    readFileSync(join(REPO_ROOT, "test", "fixtures", "import", "classic.sh"), "utf8"),
    "classic.sh",
    { name: "classic" },
  );
  assertGolden("import/classic.yaml", r.yaml);
  const [vm0, vm1] = r.compiled.lab.vms;
  assert.equal(vm0!.nics[0]!.model, "virtio-net-pci", "-net nic,model=virtio is virtio-net-pci");
  assert.deepEqual(vm0!.qemu.args, ["-vga", "std", "-usb", "-device", "usb-tablet"]);
  assert.equal(vm0!.memory, 1024);
  assert.equal(vm1!.nics.length, 2);
});

describe("libvirt XML with hostile values", () => {
  const HOSTILE = [
    "a'b\"c",
    "x<y>&z",
    "new\nline",
    "tab\there",
    "-- not a comment end --",
    "ü名$(id)",
  ];
  test("a domain with hostile paths, kernel line and qemu.args is valid libvirt XML", () => {
    const text = [
      "name: h",
      "networks: { n: { type: bridge, subnet: 10.0.2.0/24 } }",
      "vms:",
      `  a: { nics: [{ network: n }], kernel: ${JSON.stringify(`/k/${HOSTILE.join("").replace(/\n/g, "")}`)}, append: ${JSON.stringify(HOSTILE.join(" "))}, qemu: { args: ${JSON.stringify(HOSTILE)} } }`,
      `  b: { nics: [{ network: n }], disk: ${JSON.stringify(`/d/${HOSTILE[0]}${HOSTILE[1]}.qcow2`)} }`,
    ].join("\n");
    const { lab } = compile(text);
    for (const f of renderLibvirt(lab, { source: "h.yaml", facts: { kvm: true }, builtin: null })) {
      if (!f.name.endsWith(".xml")) continue;
      const p = join(TMP, `hostile-${f.name}`);
      writeFileSync(p, f.content);
      validate(p);
    }
  });
  test("a path with a line break is refused with a clear message (libvirt's schema takes one line)", () => {
    const { lab } = compile(
      'name: h\nnetworks: {}\nvms: { a: { nics: [], kernel: "/k/a\\nb" } }\n',
    );
    assert.throws(
      () => renderLibvirt(lab, { source: "h.yaml", facts: { kvm: true }, builtin: null }),
      /VM a: kernel "\/k\/a\\nb" holds a line break/,
    );
  });
  test("attribute values and text read back exactly through xmllint", () => {
    const doc = renderXml({
      el: "r",
      children: HOSTILE.map((v, i) => ({ el: "v", attrs: { i, a: v }, text: v })),
    });
    const p = join(TMP, "values.xml");
    writeFileSync(p, doc);
    HOSTILE.forEach((v, i) => {
      for (const xpath of [`string(/r/v[@i='${i}']/@a)`, `string(/r/v[@i='${i}'])`]) {
        const r = spawnSync("xmllint", ["--xpath", xpath, p], { encoding: "utf8" });
        assert.equal(r.status, 0, r.stderr);
        assert.equal(r.stdout.replace(/\n$/, ""), v, `${xpath}: ${escapeAttr(v)}`);
      }
    });
    assert.match(renderXml({ comment: "a -- b-" }), /^<!-- a - - b- {2}-->$/);
  });
});

describe("CLI", () => {
  test("import: a file to stdout, warnings located on stderr", () => {
    const r = runCli(["import", "test/fixtures/seed/section1.sh", "--name", "web"]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^name: web$/m);
    assert.match(
      r.stderr,
      /^test\/fixtures\/seed\/section1\.sh:2:25: warning: hostfwd=tcp::2222-:22/m,
    );
  });
  test("import: a script with an error exits 3 with file:line:column and writes nothing", () => {
    const bad = join(TMP, "bad.sh");
    writeFileSync(
      bad,
      "ip tuntap add dev tap0 mode tap\n-netdev user,id=n0,hostfwd=tcp::22x-:22 -device e1000,netdev=n0\n",
    );
    const out = join(TMP, "bad.yaml");
    const r = runCli(["import", bad, "-o", out]);
    assert.equal(r.status, 3);
    assert.match(r.stderr, /bad\.sh:2:20: error: hostfwd=tcp::22x-:22/);
    assert.throws(() => readFileSync(out));
  });
  test("export shell of a file, then import of it: the same lab (the CLI round trip)", () => {
    const sh = runCli(["export", "shell", "examples/services.yaml"]);
    assert.equal(sh.status, 0, sh.stderr);
    const f = join(TMP, "services.sh");
    writeFileSync(f, sh.stdout);
    const y = join(TMP, "services.yaml");
    const r = runCli(["import", f, "-o", y]);
    assert.equal(r.status, 0, r.stderr);
    const v = runCli(["validate", y, "--json"]);
    assert.equal(v.status, 0, v.stderr);
    assert.equal(JSON.parse(v.stdout).lab.name, "svc");
  });
  test("every import/export command has --help with examples", () => {
    for (const args of [["import"], ["export"], ["export", "shell"], ["export", "libvirt"]]) {
      const r = runCli([...args, "--help"]);
      assert.equal(r.status, 0);
      assert.match(r.stdout, /Examples:\n {2}\$ qnet /);
    }
  });
  test("export of an unknown lab name is a usage error", () => {
    const r = runCli(["export", "shell", "nosuchlab", "--state-dir", TMP]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /no lab named "nosuchlab" is up/);
  });
});
