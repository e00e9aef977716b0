// Rules of link impairments: units and ranges of each value, netem's combinations, and the networks
// that cannot be shaped (user networks, macvtap), every finding located at its field.
import { checkImpairSpec, type ImpairSpec, impairRefusal } from "../model/impair.js";
import type { Topology } from "../model/schema.js";
import type { PathSegment } from "./parse.js";
import type { Emit } from "./schema-issues.js";

function checkSpec(spec: ImpairSpec, base: PathSegment[], emit: Emit): void {
  for (const f of checkImpairSpec(spec)) emit([...base, f.field], f.message);
}

export function impairRules(t: Topology, emit: Emit): void {
  for (const [net, spec] of t.networks) {
    if (!spec.impair) continue;
    const base: PathSegment[] = ["networks", net, "impair"];
    const refused = impairRefusal(spec);
    if (refused)
      emit(
        base,
        `network ${net} is of type ${spec.type}${spec.type === "bridged" ? ` in ${spec.mode} mode` : ""}: ${refused}`,
        "error",
        "key",
      );
    else checkSpec(spec.impair, base, emit);
  }
  for (const [vm, spec] of t.vms) {
    spec.nics.forEach((nic, i) => {
      if (!nic.impair) return;
      const base: PathSegment[] = ["vms", vm, "nics", i, "impair"];
      const net = t.networks.get(nic.network);
      const refused = net ? impairRefusal(net) : null;
      if (refused && net)
        emit(base, `network ${nic.network} is of type ${net.type}: ${refused}`, "error", "key");
      else checkSpec(nic.impair, base, emit);
    });
  }
}
