// Namespace-wide changes (the namespace itself, ip_forward, bridge-nf-call-*) are shared by every lab in
// that namespace: while another lab of the same state root still runs there, its journal inherits the
// undo, and the last lab to go down takes the change back.
import { basename, dirname, resolve } from "node:path";
import type { Undo } from "../model/undo.js";
import { natNeeds } from "../render/nftables.js";
import { Journal } from "./journal.js";
import { listLabs, readLabRecord } from "./state.js";

/** True when the undo was given to another lab still in `netns` (so it must not run now). */
export function handOver(u: Undo, netns: string | null, stateDir: string): boolean {
  const me = resolve(stateDir);
  const heir = listLabs(dirname(me)).find((l) => {
    if (l.dir === me || l.netns !== netns) return false;
    const rec = readLabRecord(l.dir);
    if (rec === null) return false;
    // ip_forward goes to a lab that routes; anything else to any lab still in the namespace.
    const ipForward = u.kind === "sysctl" && /^net[./]ipv4[./]ip_forward$/.test(u.key);
    return !ipForward || natNeeds(rec.lab).ipForward;
  });
  if (!heir) return false;
  const what =
    u.kind === "netns"
      ? `delete network namespace ${u.name}`
      : `restore ${u.kind === "sysctl" ? `${u.key}=${u.value}` : u.kind}`;
  new Journal(heir.dir).recordLast({
    what: `${what} (handed over by lab ${basename(me)})`,
    undo: u,
  });
  return true;
}
