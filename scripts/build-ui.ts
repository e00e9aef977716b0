// Bundles the web view's page (ui/: cytoscape.js, xterm.js and the page's own code) into dist/src/ui/assets
// with esbuild, so `qnet ui` serves it without any network access at run time.
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = fileURLToPath(new URL("../..", import.meta.url));
const out = join(root, "dist", "src", "ui", "assets");

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const result = await build({
  entryPoints: [join(root, "ui", "main.ts")],
  outfile: join(out, "app.js"),
  bundle: true,
  format: "esm",
  platform: "browser",
  target: ["chrome110", "firefox110"],
  minify: true,
  // Licences of the bundled libraries, in app.js.LEGAL.txt beside it.
  legalComments: "linked",
  logLevel: "warning",
  metafile: true,
});
copyFileSync(join(root, "ui", "index.html"), join(out, "index.html"));
const bytes = Object.entries(result.metafile.outputs)
  .map(([f, o]) => `${f.split("/").pop()} ${(o.bytes / 1024).toFixed(0)} KiB`)
  .join(", ");
process.stderr.write(`build-ui: ${bytes}\n`);
