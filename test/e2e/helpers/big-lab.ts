// Generates a lab with one bridge network and N single-NIC VMs (so N taps), for e2e tests and the bench.

import type { KindName } from "../../../src/kinds/types.js";
import { compileTopology } from "../../../src/load/compile.js";
import type { Lab } from "../../../src/model/lab.js";

/** The host engine's part of `up` these tests drive: the namespace, kernel features and every link. */
export const HOST_KINDS: KindName[] = ["netns", "module", "bridge", "address", "tap", "macvtap"];

export function bigBridgeLab(name: string, taps: number, netns: string | null): Lab {
  const vms = Array.from({ length: taps }, (_, i) => `  vm${i}: { nics: [{ network: lan }] }`).join(
    "\n",
  );
  const text = `name: ${name}\nnetworks:\n  lan: { type: bridge, subnet: 10.20.0.0/16 }\nvms:\n${vms}\n`;
  const { lab } = compileTopology(text, `${name}.yaml`);
  return { ...lab, netns };
}
