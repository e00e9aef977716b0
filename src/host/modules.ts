// Kernel features for the lab's links: `modprobe` what is absent; a failure is a note, since the feature
// may be built in (the first `ip` command that needs it then fails with the kernel's own message).
import type { WantModule } from "../kinds/module.js";
import type { Action } from "../kinds/types.js";
import type { Runner } from "./runner.js";

export async function loadModules(actions: Action[], runner: Runner): Promise<string[]> {
  const notes: string[] = [];
  for (const a of actions) {
    const m = (a.payload as WantModule).name;
    const r = await runner.run(["modprobe", m], { allowFail: true, hostNamespace: true });
    if (r.exitCode !== 0)
      notes.push(
        `modprobe ${m} failed (${r.stderr.trim() || `exit ${r.exitCode}`}); continuing in case it is built in`,
      );
  }
  return notes;
}
