// The page's files, bundled at build time (scripts/build-ui.ts) next to this module, read once at start.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { EXIT, UserError } from "../errors.js";

export interface Asset {
  body: Buffer;
  type: string;
}

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".txt": "text/plain; charset=utf-8",
  ".map": "application/json",
};

export const ASSET_DIR = fileURLToPath(new URL("./assets/", import.meta.url));

/** Every bundled file by its URL path ("/assets/app.js"); index.html as "/". */
export function loadAssets(dir: string = ASSET_DIR): Map<string, Asset> {
  if (!existsSync(join(dir, "index.html")))
    throw new UserError(
      `the web page is not built (no ${join(dir, "index.html")})`,
      "run `npm run build` in the qnet checkout",
      EXIT.environment,
    );
  const out = new Map<string, Asset>();
  for (const name of readdirSync(dir)) {
    const type = TYPES[extname(name)];
    if (!type) continue;
    const asset = { body: readFileSync(join(dir, name)), type };
    out.set(name === "index.html" ? "/" : `/assets/${name}`, asset);
  }
  return out;
}
