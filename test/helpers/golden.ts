// Golden files: compare rendered output with test/golden/<name>; QNET_UPDATE_GOLDEN=1 rewrites them instead.
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The checkout's root: the nearest parent of this file holding package.json (works from src and dist). */
export const REPO_ROOT = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json"))) {
    const up = dirname(dir);
    if (up === dir) throw new Error("package.json not found above the test helpers");
    dir = up;
  }
  return dir;
})();

export const GOLDEN_DIR = join(REPO_ROOT, "test", "golden");

export const updatingGolden = () => process.env.QNET_UPDATE_GOLDEN === "1";

/** Assert `actual` equals test/golden/<name>, or (QNET_UPDATE_GOLDEN=1) write it there. */
export function assertGolden(name: string, actual: string): void {
  const file = join(GOLDEN_DIR, name);
  if (updatingGolden()) {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, actual);
    return;
  }
  if (!existsSync(file)) {
    assert.fail(
      `golden file test/golden/${name} is missing; run QNET_UPDATE_GOLDEN=1 (npm run golden:update)`,
    );
  }
  assert.equal(actual, readFileSync(file, "utf8"), `output differs from test/golden/${name}`);
}
