// Commands on a running lab's links: impair (shape them live), capture (pcap of a NIC), perf (iperf3).
import type { Command } from "commander";
import { EXIT, UserError } from "../errors.js";
import { DEFAULT_STATE_ROOT } from "../host/state.js";
import { examples, printJson, runningLab } from "./io.js";

const progressTo = (quiet: boolean) => (msg: string) => {
  if (!quiet) process.stderr.write(`qnet: ${msg}\n`);
};

function positiveInt(what: string) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1)
      throw new UserError(
        `${what} takes a positive whole number, not "${v}"`,
        undefined,
        EXIT.usage,
      );
    return n;
  };
}

export function registerLinkCommands(program: Command): void {
  program
    .command("impair")
    .description(
      "change the impairments of a running lab's NIC live (each direction), or list those in force",
    )
    .argument("<lab>", "lab name")
    .argument("[target]", "VM or VM:NIC (the NIC may be left out when the VM has one)")
    .option("--delay <time>", "one-way delay: 40ms, 1.5s, 500us")
    .option("--jitter <time>", "variation of the delay: 5ms")
    .option("--loss <percent>", "frames dropped: 1%")
    .option("--rate <rate>", "bandwidth: 10mbit, 512kbit")
    .option("--duplicate <percent>", "frames sent twice: 1%")
    .option("--corrupt <percent>", "frames with a flipped bit: 0.1%")
    .option("--reorder <percent>", "frames sent ahead of the rest (needs a delay): 25%")
    .option("--clear", "remove every impairment of the NIC (kept until --reset or down)")
    .option("--reset", "forget the live change: the topology's impairments again")
    .option("--state-dir <dir>", "state root", DEFAULT_STATE_ROOT)
    .option("--json", "machine-readable output")
    .addHelpText(
      "after",
      `
A live change is kept in the lab's state directory: \`qnet status\` and a later \`qnet up\` keep it
(they never undo it) until \`--reset\` or \`qnet down\`. Values given are set over those in force.
${examples(
  "qnet impair lab                      # what is in force, per NIC",
  "qnet impair lab vm0 --delay 40ms --jitter 5ms",
  "qnet impair lab vm1:0 --loss 100%    # cut the link",
  "qnet impair lab vm0 --clear",
  "qnet impair lab vm0 --reset          # back to the topology file's",
)}`,
    )
    .action(
      async (
        name: string,
        target: string | undefined,
        o: Record<string, string | boolean | undefined> & { stateDir: string; json?: boolean },
      ) => {
        const { dir } = runningLab(o.stateDir, name);
        const { impairNic, listImpairments, renderImpairTable } = await import("../lab/impair.js");
        const fields = [
          "delay",
          "jitter",
          "loss",
          "rate",
          "duplicate",
          "corrupt",
          "reorder",
        ] as const;
        const given = fields.filter((f) => o[f] !== undefined);
        if (!target) {
          if (given.length > 0 || o.clear || o.reset)
            throw new UserError(
              "say which NIC to change: qnet impair LAB VM[:NIC] …",
              undefined,
              EXIT.usage,
            );
          const rows = await listImpairments(dir);
          if (o.json) printJson(rows);
          else process.stdout.write(renderImpairTable(rows));
          return;
        }
        if (given.length === 0 && !o.clear && !o.reset)
          throw new UserError(
            "nothing to change",
            "give --delay, --jitter, --loss, --rate, --duplicate, --corrupt, --reorder, --clear or --reset",
            EXIT.usage,
          );
        if ((o.clear || o.reset) && given.length > 0)
          throw new UserError("--clear and --reset take no values", undefined, EXIT.usage);
        const change = Object.fromEntries(given.map((f) => [f, o[f] as string]));
        const r = await impairNic(
          dir,
          target,
          { ...change, ...(o.clear ? { clear: true } : {}), ...(o.reset ? { reset: true } : {}) },
          progressTo(!!o.json),
        );
        if (o.json) printJson(r);
        else
          process.stdout.write(
            `${r.vm}:${r.nic} (${r.tap}): ${r.before} → ${r.after}${r.origin === "live" ? " (live)" : " (the topology's)"}\n${r.changes.map((c) => `  + ${c}\n`).join("")}`,
          );
      },
    );

  program
    .command("capture")
    .description(
      "stream pcap of a VM NIC: tcpdump on its tap, or QEMU's filter-dump on a user network",
    )
    .argument("<lab>", "lab name")
    .argument("<target>", "VM or VM:NIC")
    .option("-w, --write <file>", "pcap file, or - for standard output", "-")
    .option("-c, --count <n>", "stop after this many packets", positiveInt("-c"))
    .option("--filter <bpf>", "a BPF filter expression, as tcpdump takes it")
    .option("--state-dir <dir>", "state root", DEFAULT_STATE_ROOT)
    .addHelpText(
      "after",
      `
Ctrl-C ends the capture; nothing stays attached to the VM.
${examples(
  "qnet capture lab vm0 -w - | wireshark -k -i -",
  "ssh host sudo qnet capture lab vm0 -w - | wireshark -k -i -",
  "qnet capture lab vm1:1 -c 5 --filter icmp -w ping.pcap",
)}`,
    )
    .action(
      async (
        name: string,
        target: string,
        o: { write: string; count?: number; filter?: string; stateDir: string },
      ) => {
        const { dir } = runningLab(o.stateDir, name);
        const { captureNic } = await import("../lab/capture.js");
        if (o.write === "-" && process.stdout.isTTY)
          throw new UserError(
            "refusing to write pcap to a terminal",
            "pipe it (| wireshark -k -i -, | tcpdump -r -) or give -w FILE",
            EXIT.usage,
          );
        const stop = new Promise((resolve) => {
          process.once("SIGINT", resolve);
          process.once("SIGTERM", resolve);
        });
        await captureNic(dir, target, {
          write: o.write,
          ...(o.count !== undefined ? { count: o.count } : {}),
          ...(o.filter ? { filter: o.filter } : {}),
          progress: progressTo(false),
          stop,
        });
      },
    );

  program
    .command("perf")
    .description("throughput between two VMs, or a VM and the host, with iperf3")
    .argument("<lab>", "lab name")
    .argument("<from>", "VM name or host: the sender")
    .argument("<to>", "VM name or host: the receiver")
    .option("--seconds <n>", "length of the test", positiveInt("--seconds"), 5)
    .option("--port <n>", "iperf3's TCP port", positiveInt("--port"), 5201)
    .option("--state-dir <dir>", "state root", DEFAULT_STATE_ROOT)
    .option("--json", "machine-readable output")
    .addHelpText(
      "after",
      examples("qnet perf lab vm0 vm1", "qnet perf lab host vm0 --seconds 10 --json"),
    )
    .action(
      async (
        name: string,
        from: string,
        to: string,
        o: { seconds: number; port: number; stateDir: string; json?: boolean },
      ) => {
        const { dir } = runningLab(o.stateDir, name);
        const { perf, renderPerf } = await import("../lab/perf.js");
        const r = await perf(dir, from, to, {
          seconds: o.seconds,
          port: o.port,
          progress: progressTo(!!o.json),
        });
        if (o.json) printJson(r);
        else process.stdout.write(renderPerf(r));
      },
    );
}
