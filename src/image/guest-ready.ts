// Readiness of a cloud-init guest: its agent answers first; SSH works once cloud-init has finished.
import { UserError } from "../errors.js";
import { GuestAgent } from "../host/guest-agent.js";

export interface CloudInitResult {
  /** "done", or "degraded" (cloud-init 23.4 and later: finished with recoverable errors). */
  status: "done" | "degraded";
  /** `cloud-init status --long` output. */
  detail: string;
}

/**
 * Wait, through the guest agent on `qgaSocket`, until cloud-init has finished in the guest: the login,
 * its keys and the pinned host key are then in place. Call it after the agent answers (qnet's usual
 * readiness). A cloud-init that failed is an error carrying its report.
 */
export async function waitCloudInit(
  qgaSocket: string,
  opts: { timeoutMs: number },
): Promise<CloudInitResult> {
  const agent = await GuestAgent.connect(qgaSocket, {
    timeoutMs: Math.min(opts.timeoutMs, 30_000),
  });
  try {
    const r = await agent.exec(["cloud-init", "status", "--wait", "--long"], {
      timeoutMs: opts.timeoutMs,
    });
    const detail = `${r.stdout.toString()}${r.stderr.toString()}`.trim();
    // Exit codes: 0 done, 1 an error (or crash), 2 done with recoverable errors (cloud-init >= 23.4).
    if (r.exitCode === 0) return { status: "done", detail };
    if (r.exitCode === 2) return { status: "degraded", detail };
    throw new UserError(
      `cloud-init failed in the guest (${qgaSocket}):\n${detail}`,
      "the VM runs, but its login or keys may be missing; see /var/log/cloud-init.log in the guest (qnet console)",
    );
  } finally {
    agent.close();
  }
}

/** The part of cloud-init's /run/cloud-init/status.json that readiness needs. */
interface StatusJson {
  v1?: Record<string, { finished?: number | null; errors?: string[] } | string | null>;
}

/**
 * Wait, through the guest agent, until cloud-init's network stage has finished: the login, its keys and
 * the pinned host key are written then, and sshd starts right after (clients should retry the connect
 * for a few seconds). Faster than waitCloudInit, which also waits for the config and final stages.
 * Returns the stage's errors (they need not stop SSH: a failed resizefs, say).
 */
export async function waitGuestLogin(
  qgaSocket: string,
  opts: { timeoutMs: number; intervalMs?: number },
): Promise<{ errors: string[] }> {
  const deadline = Date.now() + opts.timeoutMs;
  const agent = await GuestAgent.connect(qgaSocket, {
    timeoutMs: Math.min(opts.timeoutMs, 30_000),
  });
  try {
    for (;;) {
      const r = await agent.exec(["cat", "/run/cloud-init/status.json"], { timeoutMs: 30_000 });
      if (r.exitCode === 0) {
        let status: StatusJson = {};
        try {
          status = JSON.parse(r.stdout.toString()) as StatusJson;
        } catch {
          // written atomically by cloud-init; a parse error means a file that is not its: wait on
        }
        const init = status.v1?.init;
        if (init && typeof init === "object" && typeof init.finished === "number") {
          return { errors: init.errors ?? [] };
        }
      }
      if (Date.now() > deadline) {
        throw new UserError(
          `cloud-init did not finish its network stage in ${Math.round(opts.timeoutMs / 1000)} s (${qgaSocket})`,
          "see /var/log/cloud-init.log in the guest (qnet console or qnet exec)",
        );
      }
      await new Promise((res) => setTimeout(res, opts.intervalMs ?? 1000));
    }
  } finally {
    agent.close();
  }
}
