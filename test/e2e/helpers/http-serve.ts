// A small HTTP file server for download tests, run inside a test namespace: `node http-serve.js DIR PORT`.
// /<name> serves DIR/<name>; /missing is a 404; /truncated promises 1 MiB and stops after 1000 bytes.
import { createReadStream, statSync } from "node:fs";
import { createServer } from "node:http";
import { basename, join } from "node:path";

const [dir, port] = process.argv.slice(2);
if (!dir || !port) throw new Error("usage: http-serve DIR PORT");

const server = createServer((req, res) => {
  const name = basename(decodeURIComponent((req.url ?? "/").split("?")[0]!));
  if (name === "truncated") {
    res.writeHead(200, { "content-length": String(1 << 20) });
    res.write(Buffer.alloc(1000, 1));
    setTimeout(() => res.destroy(), 100);
    return;
  }
  let size: number;
  try {
    size = statSync(join(dir, name)).size;
  } catch {
    res.writeHead(404).end("not found\n");
    return;
  }
  res.writeHead(200, {
    "content-length": String(size),
    "content-type": "application/octet-stream",
  });
  createReadStream(join(dir, name)).pipe(res);
});
server.listen(Number(port), "127.0.0.1", () => process.stdout.write("listening\n"));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
