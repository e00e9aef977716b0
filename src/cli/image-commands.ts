// `qnet image build` and `qnet image list`: distribution images for VMs with `image:`.
import type { Command } from "commander";
import { examples, printJson } from "./io.js";

const progressTo = (quiet: boolean) => (msg: string) => {
  if (!quiet) process.stderr.write(`qnet: ${msg}\n`);
};

export function registerImageCommands(program: Command): void {
  const image = program
    .command("image")
    .description("distribution images for VMs with `image:` (built with mmdebstrap, cached)");

  image
    .command("build")
    .description(
      "build an image (mmdebstrap, then an ext4 qcow2 plus kernel and initrd), or find it in the cache",
    )
    .argument("<name>", "debian-12 or debian-13")
    .option(
      "--mirror <url>",
      "Debian mirror for the suite and its updates (default deb.debian.org)",
    )
    .option("--cache-dir <dir>", "image cache (default ~/.cache/qnet/images)")
    .option("--json", "print the built image as JSON")
    .addHelpText(
      "after",
      examples(
        "sudo qnet image build debian-12",
        "sudo qnet image build debian-13 --mirror http://ftp.de.debian.org/debian",
        "sudo qnet image build debian-12 --json | jq -r .disk",
      ),
    )
    .action(async (name: string, o: { mirror?: string; cacheDir?: string; json?: boolean }) => {
      const { buildImage } = await import("../image/build.js");
      const img = await buildImage(name, {
        ...(o.mirror ? { mirror: o.mirror } : {}),
        ...(o.cacheDir ? { cacheDir: o.cacheDir } : {}),
        onProgress: progressTo(false),
      });
      if (o.json) printJson(img);
      else
        process.stdout.write(
          `${img.name} ${img.cached ? "(from the cache)" : "(built)"}\n` +
            `disk:    ${img.disk}\nkernel:  ${img.kernel}\ninitrd:  ${img.initrd}\nappend:  ${img.append}\n` +
            `NICs:    ${img.nicModels.join(", ")}\n`,
        );
    });

  image
    .command("list")
    .description("images in the cache, and the known ones not built yet")
    .option("--cache-dir <dir>", "image cache (default ~/.cache/qnet/images)")
    .option("--json", "machine-readable list")
    .addHelpText("after", examples("qnet image list", "qnet image list --json"))
    .action(async (o: { cacheDir?: string; json?: boolean }) => {
      const { listImages } = await import("../image/list.js");
      const { formatBytes } = await import("../image/progress.js");
      const list = listImages(o.cacheDir);
      if (o.json) {
        printJson(list);
        return;
      }
      const rows = list.map((e) => [
        e.name,
        e.status === "cached" ? (e.kind ?? "") : "not built",
        e.bytes !== null ? formatBytes(e.bytes) : "-",
        e.createdAt?.slice(0, 19).replace("T", " ") ?? "-",
        e.key?.slice(0, 16) ?? "-",
        e.url ?? (e.mirror ? `${e.suite} from ${e.mirror}` : (e.description ?? "")),
      ]);
      const head = ["NAME", "STATUS", "SIZE", "CREATED", "KEY", "SOURCE"];
      const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
      for (const r of [head, ...rows]) {
        process.stdout.write(
          `${r.map((c, i) => (i < r.length - 1 ? c.padEnd(widths[i]!) : c)).join("  ")}\n`,
        );
      }
    });
}
