// Reads the qdiscs of a namespace and the ingress filters of the devices asked for (one `tc -batch`,
// limited to devices the link dump found), for the impair kind's observation.
import { existsSync, readFileSync } from "node:fs";
import { release } from "node:os";
import { gunzipSync } from "node:zlib";
import { parseFilterBatch, parseQdiscs } from "../facts/tc-json.js";
import type { KernelFeature, Observation, ObserveRequest } from "../facts/types.js";
import type { Runner } from "./runner.js";

export async function readTc(runner: Runner, req: ObserveRequest, obs: Observation): Promise<void> {
  const present = new Set(obs.links.map((l) => l.name));
  const devs = [...new Set(req.ingressFilters ?? [])].filter((d) => present.has(d));
  await Promise.all([
    req.qdiscs &&
      runner.run(["tc", "-json", "qdisc", "show"], { allowFail: true }).then((r) => {
        obs.qdiscs = r.exitCode === 0 ? parseQdiscs(r.stdout) : null;
      }),
    devs.length > 0 &&
      runner
        .run(["tc", "-json", "-batch", "-"], {
          input: `${devs.map((d) => `filter show dev ${d} ingress`).join("\n")}\n`,
          allowFail: true,
        })
        .then((r) => {
          obs.ingressFilters = parseFilterBatch(r.stdout, devs);
        }),
  ]);
}

/** The kernel configuration symbol of each feature qnet asks about. */
const CONFIG: Record<string, string> = {
  sch_netem: "CONFIG_NET_SCH_NETEM",
  sch_tbf: "CONFIG_NET_SCH_TBF",
  sch_ingress: "CONFIG_NET_SCH_INGRESS",
  cls_u32: "CONFIG_NET_CLS_U32",
  act_mirred: "CONFIG_NET_ACT_MIRRED",
  ifb: "CONFIG_IFB",
};

function readText(path: string, gz = false): string | null {
  try {
    const raw = readFileSync(path);
    return gz ? gunzipSync(raw).toString("utf8") : raw.toString("utf8");
  } catch {
    return null;
  }
}

/**
 * Whether the running kernel has each feature, without loading anything: loaded (/sys/module), listed in
 * /proc/config.gz (built in or a module), or in the modules tree of the running kernel; unknown when
 * none of these can be read (then the first `tc` that needs it says so itself).
 */
export function kernelFeatures(names: string[], sys = "/sys"): Map<string, KernelFeature> {
  const out = new Map<string, KernelFeature>();
  if (names.length === 0) return out;
  const config = readText("/proc/config.gz", true);
  const dir = `/lib/modules/${release()}`;
  const listed = `${readText(`${dir}/modules.dep`) ?? ""}\n${readText(`${dir}/modules.builtin`) ?? ""}`;
  for (const name of names) {
    const sym = CONFIG[name];
    if (existsSync(`${sys}/module/${name}`)) {
      out.set(name, { state: "present", source: `${sys}/module/${name}` });
      continue;
    }
    if (config && sym) {
      const m = new RegExp(`^${sym}=([ym])$`, "m").exec(config);
      if (m) out.set(name, { state: "present", source: `/proc/config.gz: ${sym}=${m[1]}` });
      else out.set(name, { state: "absent", source: `/proc/config.gz: ${sym} is not set` });
      continue;
    }
    if (new RegExp(`/${name}\\.ko`).test(listed))
      out.set(name, { state: "present", source: `${dir}` });
    else out.set(name, { state: "unknown", source: "no /proc/config.gz and no modules tree" });
  }
  return out;
}
