// The QemuOpts reader: QEMU's own rules by example, and properties (fast-check, fixed seed): what qnet
// writes (commas doubled, shell-quoted) reads back exactly, and hostile scripts get located errors, never a crash.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { formatArgv, shellQuote } from "../../src/errors.js";
import { ImportError, importScript } from "../../src/import/index.js";
import { parseJsonOpts, parseOptionArg, parseQemuOpts } from "../../src/import/qemu-opts.js";
import { readShellScript } from "../../src/import/shell-script.js";
import { qemuOpts, qemuValue } from "../../src/render/qemu-escape.js";

const SEED = 18;
const kv = (s: string, implied?: string) => {
  const r = parseQemuOpts(s, implied);
  assert.ok(r.ok, `${s}: ${r.ok ? "" : r.message}`);
  return r.pairs.map((p) => [p.key, p.value]);
};

describe("QemuOpts, by example", () => {
  test("the first part takes the implied key when it has no `=`", () => {
    assert.deepEqual(kv("user,id=n0", "type"), [
      ["type", "user"],
      ["id", "n0"],
    ]);
    assert.deepEqual(kv("type=user,id=n0", "type"), [
      ["type", "user"],
      ["id", "n0"],
    ]);
    assert.deepEqual(kv("256", "size"), [["size", "256"]]);
  });
  test("`,,` is a literal comma, in values and in the implied first value", () => {
    assert.deepEqual(kv("file=/img/a,,b.qcow2,if=virtio"), [
      ["file", "/img/a,b.qcow2"],
      ["if", "virtio"],
    ]);
    assert.deepEqual(kv("e1000,,x,mac=52:54:00:00:00:01", "driver"), [
      ["driver", "e1000,x"],
      ["mac", "52:54:00:00:00:01"],
    ]);
    assert.deepEqual(kv("a=,,,b=1"), [
      ["a", ","],
      ["b", "1"],
    ]);
  });
  test("bare booleans: `restrict` is on, `norestrict` off", () => {
    assert.deepEqual(kv("user,id=n,restrict,noipv6", "type"), [
      ["type", "user"],
      ["id", "n"],
      ["restrict", "on"],
      ["ipv6", "off"],
    ]);
  });
  test("repeated keys are all kept, in order (hostfwd)", () => {
    assert.deepEqual(kv("user,hostfwd=tcp::1-:2,hostfwd=udp::3-:4", "type").slice(1), [
      ["hostfwd", "tcp::1-:2"],
      ["hostfwd", "udp::3-:4"],
    ]);
  });
  test("an empty value and a trailing comma", () => {
    assert.deepEqual(kv("virtio-net-pci.romfile=,"), [["virtio-net-pci.romfile", ""]]);
  });
  test("errors name the offset: an empty part, a part with no name", () => {
    const a = parseQemuOpts("user,id=n,,", "type");
    assert.ok(a.ok); // `n,` : the doubled comma belongs to the value
    const b = parseQemuOpts("user,=x", "type");
    assert.ok(!b.ok);
    assert.equal(b.at, 5);
    const c = parseQemuOpts("user,,,", undefined);
    assert.ok(!c.ok);
  });
  test("the JSON form: booleans on/off, numbers, hostfwd lists, QAPI's {str} wrapper", () => {
    const r = parseJsonOpts(
      '{"type":"user","id":"n0","restrict":true,"hostfwd":[{"str":"tcp::22-:22"},"udp::53-:53"],"x":1}',
    );
    assert.ok(r.ok);
    assert.deepEqual(
      r.pairs.map((p) => [p.key, p.value]),
      [
        ["type", "user"],
        ["id", "n0"],
        ["restrict", "on"],
        ["hostfwd", "tcp::22-:22"],
        ["hostfwd", "udp::53-:53"],
        ["x", "1"],
      ],
    );
    const bad = parseOptionArg('{"type": "user", "id": ');
    assert.ok(!bad.ok);
    assert.match(bad.message, /invalid JSON/);
    assert.ok(!parseOptionArg('{"a":{"b":1}}').ok);
  });
});

const key = fc.stringMatching(/^[a-z][a-z0-9_.-]{0,8}$/);
/** Values with everything QEMU options and shells choke on. */
const value = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.string({ unit: "grapheme", maxLength: 8 }),
  fc.constantFrom(
    ",",
    ",,",
    "a,b",
    "'",
    '"',
    "$(id)",
    "`x`",
    "\\",
    "a b",
    "x\ny",
    "=",
    "-x",
    "ü名",
  ),
);

describe("QemuOpts, properties", () => {
  test("qnet's own writer (commas doubled) reads back exactly, the implied head included", () => {
    fc.assert(
      fc.property(
        value.filter((v) => v !== "" && !v.includes("=")),
        fc.array(fc.tuple(key, value), { maxLength: 5 }),
        (head, pairs) => {
          const s = qemuOpts(qemuValue(head), pairs);
          const r = parseQemuOpts(s, "type");
          assert.ok(r.ok, s);
          assert.deepEqual(
            r.pairs.map((p) => [p.key, p.value]),
            [["type", head], ...pairs],
          );
        },
      ),
      { seed: SEED, numRuns: 2000 },
    );
  });

  test("shell-quoted as qnet prints it, an option reads back exactly through the script reader", async () => {
    const samples = fc.sample(
      fc.tuple(
        value.filter((v) => v !== "" && !v.includes("=")),
        fc.array(fc.tuple(key, value), { maxLength: 4 }),
      ),
      { seed: SEED, numRuns: 300 },
    );
    for (const [head, pairs] of samples) {
      const opt = qemuOpts(qemuValue(head), pairs);
      const script = await readShellScript(`${formatArgv(["-device", opt])}\n`);
      assert.deepEqual(script.issues, [], opt);
      const words = script.commands[0]!.words.map((w) => w.text);
      assert.deepEqual(words, ["-device", opt]);
      const r = parseQemuOpts(words[1]!, "driver");
      assert.ok(r.ok);
      assert.deepEqual(
        r.pairs.map((p) => [p.key, p.value]),
        [["driver", head], ...pairs],
      );
    }
  });

  test("every character's location maps back into the script (for errors inside options)", async () => {
    const s = await readShellScript(`echo ok\n  -netdev 'user,id=n0,hostfwd=tcp::x-:22'\n`);
    const w = s.commands[1]!.words[1]!;
    assert.deepEqual(w.loc, { line: 2, column: 11 });
    const at = w.text.indexOf("hostfwd");
    assert.deepEqual(w.at(at), { line: 2, column: 12 + at });
  });

  test("hostile scripts: every failure is a located ImportError inside the text, never a crash", async () => {
    const alphabet = fc.constantFrom(
      ..."-netdevice user,tap=id:hostfwd=tcp::22-:22'\"\\$(){}[]<>|&;# \n\t,=ü名\u0000".split(""),
    );
    const fragments = fc.constantFrom(
      "-netdev ",
      "user,id=n0",
      ",,",
      "hostfwd=tcp::2222-:22",
      " -device e1000,netdev=n0",
      "'",
      '"',
      "{",
      '{"type":"user"',
      "\n",
      "ip tuntap add dev tap0 mode tap\n",
      "brctl addif br0 tap0\n",
      "ifconfig br0 10.0.2.1 netmask 255.255.255.0 up\n",
      "qemu-system-x86_64 ",
      "-m ",
      "$(whoami)",
      "nmcli c add type bridge ifname br0\n",
    );
    const scripts = fc.sample(
      fc.oneof(
        fc.string({ unit: alphabet, maxLength: 120 }),
        fc
          .array(fc.oneof(fragments, fc.string({ maxLength: 4 })), { maxLength: 14 })
          .map((a) => a.join("")),
      ),
      { seed: SEED, numRuns: 1500 },
    );
    let rejected = 0;
    for (const text of scripts) {
      const lines = text.split("\n");
      try {
        await importScript(text, "hostile.sh");
      } catch (e) {
        if (e instanceof ImportError) {
          rejected++;
          for (const f of e.findings) {
            assert.ok(
              f.loc.line >= 1 && f.loc.line <= lines.length,
              `${JSON.stringify(text)}: ${f.loc.line}`,
            );
            assert.ok(f.loc.column >= 1 && f.loc.column <= [...lines[f.loc.line - 1]!].length + 1);
          }
          assert.match(e.message, /^hostile\.sh:\d+:\d+: error: /m);
          continue;
        }
        // A script that imports but yields an invalid topology: a located ValidationError.
        if ((e as Error).name === "ValidationError") continue;
        throw new Error(`crash on ${JSON.stringify(text)}: ${(e as Error).stack}`);
      }
    }
    assert.ok(
      rejected > 100,
      `only ${rejected} of ${scripts.length} hostile scripts were rejected`,
    );
  });

  test("shellQuote and the reader agree on every string (what export writes, import reads)", async () => {
    const strs = fc.sample(
      fc.string({ unit: "grapheme", maxLength: 20 }).filter((s) => !s.includes("\u0000")),
      {
        seed: SEED,
        numRuns: 400,
      },
    );
    const script = await readShellScript(`${strs.map((s) => `x ${shellQuote(s)}`).join("\n")}\n`);
    assert.deepEqual(
      script.commands.map((c) => c.words[1]!.text),
      strs,
    );
  });
});
