// The programs qnet runs and the built-in guest's kernel: each missing one named with its Debian package;
// `--fix` installs them all with apt-get, after one confirmation.
import { readFileSync } from "node:fs";
import { pickKernel } from "../guest/build.js";
import { findProgram, type PackageEntry, packageList } from "../host/programs.js";
import type { CheckResult, DoctorContext } from "./types.js";

/** The package's name on this distribution (Ubuntu names a few differently). */
function aptName(e: PackageEntry, osRelease: string): string {
  const ubuntu = /^(ID|ID_LIKE)=.*\bubuntu\b/m.test(osRelease);
  return (ubuntu && e.ubuntu) || e.package;
}

function readOsRelease(root: string): string {
  try {
    return readFileSync(`${root}/etc/os-release`, "utf8");
  } catch {
    return "";
  }
}

interface Finding {
  entry: PackageEntry;
  /** The programs of the entry that are missing; for the kernel entry, why it is missing. */
  missing: string[];
}

async function findings(ctx: DoctorContext): Promise<Finding[]> {
  const out: Finding[] = [];
  for (const entry of packageList().runtime) {
    if (entry.programs.length === 0) {
      // The kernel: what the built-in guest boots, found as it finds it.
      const why = await pickKernel(ctx.env.bootDir, ctx.env.modulesRoot).then(
        () => null,
        (e: Error) => e.message,
      );
      if (why) out.push({ entry, missing: [why] });
      continue;
    }
    const missing = entry.programs.filter((p) => findProgram(p) === null);
    if (missing.length) out.push({ entry, missing });
  }
  return out;
}

export async function checkPrograms(ctx: DoctorContext): Promise<CheckResult[]> {
  const os = readOsRelease(ctx.env.osRoot);
  let found = await findings(ctx);
  const install = [...new Set(found.map((f) => aptName(f.entry, os)))];
  let fixed: string | undefined;
  if (ctx.fix && install.length > 0) {
    const command = ["apt-get", "install", "-y", "--no-install-recommends", ...install];
    if (await ctx.confirm(`install ${install.join(" ")} with apt-get?`)) {
      await ctx.runner.run(["apt-get", "update", "-qq"], {
        hostNamespace: true,
        timeoutMs: 600_000,
      });
      await ctx.runner.run(command, { hostNamespace: true, timeoutMs: 1_800_000 });
      fixed = `installed ${install.join(" ")}`;
      found = await findings(ctx);
    }
  }
  const all = packageList().runtime;
  const results = found.map(
    (f): CheckResult => ({
      id: `programs.${f.entry.package}`,
      title: `${f.entry.package} (${f.entry.programs.join(", ") || "kernel"})`,
      status: f.entry.required ? "fail" : "warn",
      detail:
        f.entry.programs.length === 0
          ? `${f.missing[0]}: the built-in guest boots the host's kernel (${f.entry.for}).`
          : `Not found: ${f.missing.join(", ")}; qnet runs ${f.missing.length === 1 ? "it" : "them"} for ${f.entry.for}.`,
      fix: `apt-get install --no-install-recommends ${aptName(f.entry, os)} (qnet doctor --fix installs every missing one)`,
    }),
  );
  if (results.length === 0)
    results.push({
      id: "programs",
      title: "programs",
      status: "pass",
      detail: `Every program qnet runs is installed (${all.length} Debian packages, packages/debian.json), and the built-in guest has a kernel.`,
      ...(fixed ? { fixed } : {}),
    });
  return results;
}
