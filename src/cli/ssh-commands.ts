// `qnet ssh LAB VM [-- CMD…]` and `qnet ssh-config LAB`: OpenSSH into a lab's VMs with pinned host keys.
import { spawn } from "node:child_process";
import type { Command } from "commander";
import { EXIT } from "../errors.js";
import { DEFAULT_STATE_ROOT, recordNetns } from "../host/state.js";
import { examples, runningLab } from "./io.js";

export function registerSshCommands(program: Command): void {
  program
    .command("ssh")
    .description(
      "log in to a VM with OpenSSH (the lab's key, the VM's pinned host key); runs CMD when given",
    )
    .argument("<lab>", "lab name")
    .argument("<vm>", "VM name")
    .argument("[command...]", "command to run (put -- before it)")
    .option("--state-dir <dir>", "state root", DEFAULT_STATE_ROOT)
    .option("--wait <seconds>", "time an image VM may take to create its login (cloud-init)", "180")
    .addHelpText(
      "after",
      examples(
        "qnet ssh lab vm0",
        "qnet ssh lab vm1 -- hostname",
        "scp -F <(qnet ssh-config lab) f vm0:",
      ),
    )
    .action(
      async (
        name: string,
        vm: string,
        command: string[],
        o: { stateDir: string; wait: string },
      ) => {
        const { dir, record } = runningLab(o.stateDir, name);
        const { sshArgv } = await import("../lab/ssh.js");
        const argv = await sshArgv(dir, record.lab, recordNetns(record), vm, command);
        const v = record.lab.vms.find((x) => x.name === vm)!;
        if (v.guest.kind === "image" || v.guest.kind === "disk") {
          // The agent answers before cloud-init has made the login: wait for its network stage.
          const { waitGuestLogin } = await import("../image/guest-ready.js");
          const { vmFiles } = await import("../model/paths.js");
          await waitGuestLogin(vmFiles(dir, vm).qga, { timeoutMs: Number(o.wait) * 1000 });
        }
        const code = await new Promise<number>((resolve) => {
          const child = spawn(argv[0]!, argv.slice(1), { stdio: "inherit" });
          child.on("error", () => resolve(EXIT.environment));
          child.on("exit", (c, sig) => resolve(c ?? (sig ? 128 : EXIT.failure)));
        });
        process.exitCode = code;
      },
    );

  program
    .command("ssh-config")
    .description(
      "print an OpenSSH config with one Host per VM (address or forward, login, key, pinned host key)",
    )
    .argument("<lab>", "lab name")
    .option("--state-dir <dir>", "state root", DEFAULT_STATE_ROOT)
    .addHelpText(
      "after",
      examples(
        "ssh -F <(qnet ssh-config lab) vm0",
        "qnet ssh-config lab >> ~/.ssh/config.d/lab   # scp, rsync and Ansible use it too",
      ),
    )
    .action(async (name: string, o: { stateDir: string }) => {
      const { dir, record } = runningLab(o.stateDir, name);
      const { labSsh } = await import("../lab/ssh.js");
      const s = await labSsh(dir, record.lab);
      const ns = recordNetns(record);
      let text = s.config;
      if (ns)
        text = text.replace(
          "\n",
          `\n# The lab runs in network namespace ${ns}: run ssh there (ip netns exec ${ns} ssh -F …), or use qnet ssh.\n`,
        );
      const { insideInfo } = await import("../rootless/inside.js");
      if (insideInfo())
        text = text.replace(
          "\n",
          "\n# A rootless lab: VM addresses are inside its own namespaces. Use qnet ssh, or a bridge forward to port 22 (published on your loopback).\n",
        );
      for (const u of s.unreachable) text += `\n# ${u.vm}: no route (${u.reason}); ${u.hint}\n`;
      process.stdout.write(text);
    });
}
