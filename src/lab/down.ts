// `qnet down`: take back everything a lab's journal records, newest first, without the topology file.
import { existsSync } from "node:fs";
import { downLab } from "../engine/undo.js";
import { EXIT, UserError } from "../errors.js";
import { DEFAULT_STATE_ROOT, labStateDir, listLabs, openLabState } from "../host/state.js";

export interface DownResult {
  lab: string;
  undone: string[];
  errors: string[];
}

export async function down(name: string, opts: { stateRoot?: string } = {}): Promise<DownResult> {
  const stateRoot = opts.stateRoot ?? DEFAULT_STATE_ROOT;
  const dir = labStateDir(stateRoot, name);
  if (!existsSync(dir)) {
    const known = listLabs(stateRoot).map((l) => l.name);
    throw new UserError(
      `no lab named "${name}" is known under ${stateRoot}`,
      known.length ? `known labs: ${known.join(", ")}` : "no lab is up",
      EXIT.usage,
    );
  }
  const state = await openLabState({ stateRoot, lab: name });
  try {
    const r = await downLab({ stateDir: state.dir });
    return { lab: name, undone: r.undone, errors: r.errors.map((e) => e.message) };
  } finally {
    state.release();
  }
}
