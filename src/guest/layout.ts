// The built-in guest's initramfs file tree (pure): every input placed at its path, parents first.

import { posix } from "node:path";
import type { CpioEntry } from "./cpio.js";
import { GUEST_CONFIGURE_SCRIPT, GUEST_MODULE_DIR, GUEST_UDHCPC_SCRIPT } from "./init-script.js";

/** Everything that goes into the initramfs, already read from the host. */
export interface GuestFiles {
  initScript: string;
  configureScript: string;
  udhcpcScript: string;
  busybox: Uint8Array;
  /** Modules in load order, decompressed. */
  modules: ReadonlyArray<{ name: string; data: Uint8Array }>;
  /** qemu-ga and the shared objects it needs, at their host paths (absolute). */
  qemuGa: { path: string; data: Uint8Array };
  libs: ReadonlyArray<{ path: string; data: Uint8Array }>;
  /** Other programs at their host paths (iperf3); their libraries are in `libs`. */
  extras?: ReadonlyArray<{ path: string; data: Uint8Array }>;
  /** dropbear at its host path (its libraries are among `libs`), or absent: no SSH server. */
  dropbear?: { path: string; data: Uint8Array } | null;
}

/** root's account for dropbear: a shell and a home; "x" is no password (logins are by key only). */
const PASSWD = "root:x:0:0:root:/root:/bin/sh\n";
const GROUP = "root:x:0:\n";

/** Directories that /init expects to exist before it creates anything. */
const BASE_DIRS = [
  "bin",
  "dev",
  "etc",
  "proc",
  "root",
  "run",
  "sbin",
  "sys",
  "tmp",
  "usr/bin",
  "usr/sbin",
  "var",
];

/** The cpio entries of the initramfs: directories (sorted, parents first), then files in a fixed order. */
export function guestLayout(f: GuestFiles): CpioEntry[] {
  const files: CpioEntry[] = [
    { type: "file", path: "init", data: Buffer.from(f.initScript, "utf8"), mode: 0o755 },
    { type: "file", path: "bin/busybox", data: f.busybox, mode: 0o755 },
    { type: "symlink", path: "bin/sh", target: "busybox" },
    {
      type: "file",
      path: GUEST_CONFIGURE_SCRIPT,
      data: Buffer.from(f.configureScript, "utf8"),
      mode: 0o755,
    },
    {
      type: "file",
      path: GUEST_UDHCPC_SCRIPT,
      data: Buffer.from(f.udhcpcScript, "utf8"),
      mode: 0o755,
    },
    ...f.modules.map(
      (m): CpioEntry => ({
        type: "file",
        path: `${GUEST_MODULE_DIR}/${m.name}.ko`,
        data: m.data,
        mode: 0o644,
      }),
    ),
    { type: "file", path: f.qemuGa.path, data: f.qemuGa.data, mode: 0o755 },
    ...(f.extras ?? []).map(
      (e): CpioEntry => ({ type: "file", path: e.path, data: e.data, mode: 0o755 }),
    ),
    ...f.libs.map((l): CpioEntry => ({ type: "file", path: l.path, data: l.data, mode: 0o755 })),
  ];
  if (f.dropbear) {
    files.push(
      { type: "file", path: f.dropbear.path, data: f.dropbear.data, mode: 0o755 },
      { type: "file", path: "etc/passwd", data: Buffer.from(PASSWD), mode: 0o644 },
      { type: "file", path: "etc/group", data: Buffer.from(GROUP), mode: 0o644 },
    );
  }
  const dirs = new Set<string>(BASE_DIRS);
  for (const e of files) {
    let d = posix.dirname(e.path.replace(/^\/+/, ""));
    while (d !== "." && d !== "/" && d !== "") {
      dirs.add(d);
      d = posix.dirname(d);
    }
  }
  const dirEntries = [...dirs]
    .sort()
    .map((d): CpioEntry => ({ type: "dir", path: d, mode: d === "tmp" ? 0o1777 : 0o755 }));
  return [...dirEntries, ...files];
}
