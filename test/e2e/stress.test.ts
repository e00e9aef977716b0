// A short stress run in the suite: 3 up/down cycles of a two-network lab with VMs, then 3 labs at once.
import assert from "node:assert/strict";
import { test } from "node:test";
import { stress } from "../../bench/stress.js";

test("3 up/down cycles and 3 labs at once leave the host as it was", async () => {
  const r = await stress(3, 3, (m) => console.log(`# ${m}`));
  assert.equal(r.cycles, 3);
  assert.equal(r.labsAtOnce, 3);
});
