// The engine against a RecordingRunner: journal before the one batch, no-op rerun, rollback on failure.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import type { ExecContext } from "../../src/engine/context.js";
import { reconcile, rollback } from "../../src/engine/engine.js";
import { CommandError } from "../../src/errors.js";
import { Journal } from "../../src/host/journal.js";
import { RecordingRunner, type RunResult } from "../../src/host/runner.js";
import type { Lab } from "../../src/model/lab.js";
import {
  exampleLab,
  type HostSnapshot,
  LINK_KINDS,
  lo,
  snapshotJson,
  upSnapshot,
} from "./host-fixtures.js";

const applyHostNetwork = (ctx: Omit<ExecContext, "obs">) =>
  reconcile(ctx, { only: LINK_KINDS }).then((r) => r.plan.actions);

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function context(lab: Lab, answer: (argv: string[]) => Partial<RunResult>) {
  const dir = mkdtempSync(join(tmpdir(), "qnet-apply-"));
  dirs.push(dir);
  const runner = new RecordingRunner(null, answer);
  const progress: string[] = [];
  const ctx: Omit<ExecContext, "obs"> = {
    lab,
    stateDir: dir,
    runner,
    journal: new Journal(dir),
    facts: { vhost: false, kvm: false },
    options: {},
    progress: (m) => progress.push(m),
  };
  return { ctx, runner, dir, progress };
}

/** Answers observation calls from a snapshot; `batch` answers the `ip -batch` calls. */
function host(
  snap: () => HostSnapshot,
  batch: (argv: string[]) => Partial<RunResult> = () => ({}),
) {
  return (argv: string[]): Partial<RunResult> => {
    const s = snapshotJson(snap());
    if (argv.join(" ") === "ip -json -details link show") return { stdout: s.links };
    if (argv.join(" ") === "ip -json link show") return { stdout: s.links };
    if (argv.join(" ") === "ip -json addr show") return { stdout: s.addrs };
    if (argv.includes("-batch")) return batch(argv);
    return {};
  };
}

const ipCalls = (r: RecordingRunner) =>
  r.calls.filter((c) => c.argv[0] === "ip").map((c) => c.argv);

describe("the engine on links", () => {
  it("journals every action before one ip -batch process holding all link changes", async () => {
    const lab = exampleLab("services.yaml");
    let journalAtBatch = -1;
    let dirRef = "";
    const { ctx, runner, dir } = context(
      lab,
      host(
        () => ({ netns: null, links: [lo] }),
        () => {
          journalAtBatch = Journal.read(dirRef).length;
          return {};
        },
      ),
    );
    dirRef = dir;
    const actions = await applyHostNetwork(ctx);
    assert.equal(actions.length, 4); // bridge, its address, 2 taps
    const calls = ipCalls(runner);
    const batches = calls.filter((a) => a.includes("-batch"));
    assert.equal(batches.length, 1, "exactly one ip -batch process");
    assert.deepEqual(batches[0], ["ip", "-batch", join(dir, "host.batch")]);
    assert.equal(journalAtBatch, 3, "all undos were on disk when the batch ran");
    const lines = readFileSync(join(dir, "host.batch"), "utf8").trim().split("\n");
    assert.deepEqual(
      lines,
      actions.flatMap((a) => a.batch),
    );
    assert.deepEqual(
      Journal.read(dir).map((e) => e.undo),
      actions.flatMap((a) => (a.undo ? [a.undo] : [])),
    );
  });

  it("does nothing when the host already matches (no batch, no journal entry)", async () => {
    const lab = exampleLab("services.yaml");
    const { ctx, runner, dir } = context(
      lab,
      host(() => upSnapshot(lab)),
    );
    assert.deepEqual(await applyHostNetwork(ctx), []);
    assert.equal(ipCalls(runner).filter((a) => a.includes("-batch")).length, 0);
    assert.equal(Journal.read(dir).length, 0);
  });

  it("rolls back this run's actions newest first and reports argv, exit code and stderr", async () => {
    const lab = exampleLab("private-lan.yaml");
    let batchDone = false;
    // After the failing batch the bridge and the first tap exist with the mark.
    const up = upSnapshot(lab);
    const partial: HostSnapshot = { netns: null, links: up.links.slice(0, 3) };
    const { ctx, runner, dir } = context(
      lab,
      host(
        () => (batchDone ? partial : { netns: null, links: [lo] }),
        (argv) => {
          if (argv.includes("-force")) return {};
          batchDone = true;
          return {
            exitCode: 2,
            stderr: `RTNETLINK answers: File exists\nCommand failed ${argv.at(-1)}:8\n`,
          };
        },
      ),
    );
    await assert.rejects(applyHostNetwork(ctx), (e: unknown) => {
      assert.ok(e instanceof CommandError);
      assert.equal(e.exitCode, 2);
      assert.match(e.stderr, /File exists/);
      assert.deepEqual(e.argv, ["ip", "-batch", join(dir, "host.batch")]);
      // Line 8 is the second tap's first line (bridge: 3 lines, address: 1, tap: 3 lines).
      assert.match(e.message, /at "create tap .* for vm1/);
      return true;
    });
    // The engine leaves the rollback to its caller (`up`), from the journal alone.
    assert.deepEqual(await rollback(dir, runner, 0), []);
    const deletes = ipCalls(runner).filter((a) => a.includes("-force"));
    assert.equal(deletes.length, 1, "links are deleted in one batch");
    const lines = readFileSync(join(dir, "down.batch"), "utf8").trim().split("\n");
    // Only links still carrying the mark, newest first: tap of vm0, then the bridge.
    assert.deepEqual(lines, [`link del dev ${up.links[2]!.name}`, "link del dev br0"]);
  });
});
