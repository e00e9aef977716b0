// Runs fetchImage in its own process (so a test can run it inside a namespace) and prints the outcome as JSON.
import { fetchImage } from "../../../src/image/download.js";

const [url, sha256, cacheDir] = process.argv.slice(2);
let progressLines = 0;
let lastBytes = 0;
fetchImage(url!, sha256 === "-" ? undefined : sha256, {
  cacheDir: cacheDir!,
  onBytes: (n) => {
    lastBytes = n;
  },
  onProgress: () => {
    progressLines++;
  },
  idleTimeoutMs: 5_000,
}).then(
  (r) => process.stdout.write(`${JSON.stringify({ ok: true, ...r, progressLines, lastBytes })}\n`),
  (e: Error & { hint?: string }) => {
    process.stdout.write(
      `${JSON.stringify({ ok: false, name: e.name, message: e.message, hint: e.hint })}\n`,
    );
  },
);
