// The lab's live impairments file (impair.json in its state directory), written by `qnet impair`.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { LiveImpairments } from "../model/impair-live.js";
import { writeFileAtomic } from "./files.js";

export const liveImpairmentsFile = (stateDir: string) => join(stateDir, "impair.json");

export function readLiveImpairments(stateDir: string): LiveImpairments | null {
  const path = liveImpairmentsFile(stateDir);
  if (!existsSync(path)) return null;
  try {
    const v = JSON.parse(readFileSync(path, "utf8")) as LiveImpairments;
    return v && typeof v.nics === "object" && v.nics !== null ? { nics: { ...v.nics } } : null;
  } catch {
    return null;
  }
}

export function writeLiveImpairments(stateDir: string, live: LiveImpairments): void {
  writeFileAtomic(liveImpairmentsFile(stateDir), `${JSON.stringify(live, null, 2)}\n`);
}
