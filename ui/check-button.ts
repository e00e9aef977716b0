// The Check button: runs `qnet check` on the server; every viewer of the lab sees the result it pushes.
import type { CheckView, StateMessage } from "../src/ui/protocol";
import { byId } from "./api";
import { showCheck, showCheckError, showCheckRunning } from "./check-view";

export interface CheckViewState {
  onMessage(m: Extract<StateMessage, { type: "check" }>): void;
  dispose(): void;
}

export function wireCheck(opts: {
  run: () => Promise<CheckView>;
  onStart: () => void;
}): CheckViewState {
  const button = byId<HTMLButtonElement>("check-button");
  button.hidden = false;
  const busy = (on: boolean) => {
    button.disabled = on;
    button.textContent = on ? "Checking…" : "Check";
  };
  button.onclick = () => {
    opts.onStart();
    busy(true);
    showCheckRunning();
    opts.run().then(
      (r) => {
        busy(false);
        showCheck(r);
      },
      (e: unknown) => {
        busy(false);
        showCheckError((e as Error).message);
      },
    );
  };
  return {
    onMessage(m) {
      if (m.phase === "running") {
        busy(true);
        showCheckRunning();
      } else if (m.phase === "done") {
        busy(false);
        showCheck(m.report);
      } else {
        busy(false);
        showCheckError(m.message);
      }
    },
    dispose() {
      button.onclick = null;
      button.hidden = true;
      busy(false);
    },
  };
}
