#!/usr/bin/env node
// Prints the packages of debian.json for this distribution, space-separated: the runtime ones, plus the
// test suite's with --test. The one place that reads the list for apt-get (./setup, .ci/run, doctor --fix).
import { readFileSync } from "node:fs";

const list = JSON.parse(readFileSync(new URL("./debian.json", import.meta.url), "utf8"));
let osRelease = "";
try {
  osRelease = readFileSync("/etc/os-release", "utf8");
} catch {
  // not a Debian-family system: the Debian names
}
const ubuntu = /^(ID|ID_LIKE)=.*\bubuntu\b/m.test(osRelease);
const names = list.runtime.map((p) => (ubuntu && p.ubuntu ? p.ubuntu : p.package));
if (process.argv.includes("--test")) names.push(...list.test);
process.stdout.write(`${names.join(" ")}\n`);
