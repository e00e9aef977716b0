// A real NetworkManager (Debian 12: 1.42) for end-to-end tests, after ../shared/recipes/networkmanager-in-netns.sh:
// its own D-Bus system bus, running inside a test's `host` namespace with a private /run, /etc/NetworkManager
// and /var/lib/NetworkManager and a read-only /sys (but /sys/devices), so it manages only that namespace.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface NmOptions {
  /** dhcp: NetworkManager's default wired profile takes a lease; static: profile `lan` with 192.168.50.2/24. */
  mode: "dhcp" | "static";
}

export interface NetworkManagerInstance {
  dir: string;
  /** The bus address NetworkManager and nmcli use. */
  bus: string;
  /** NetworkManager's PID (changes on restart). */
  pid(): number;
  /** nmcli against this NetworkManager; stdout. Throws on failure. */
  nmcli(args: string[]): string;
  /** Stop it (SIGTERM, as `systemctl stop` does) and start it again with the same state. */
  restart(): Promise<void>;
  /** Stop NetworkManager and the bus, remove the directory. */
  stop(): Promise<void>;
  /** NetworkManager's log so far. */
  log(): string;
}

async function waitFor(what: string, test: () => boolean, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function stopProcess(p: ChildProcess | null): Promise<void> {
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  const done = new Promise((r) => p.once("exit", r));
  p.kill("SIGTERM");
  const t = setTimeout(() => p.kill("SIGKILL"), 10_000);
  await done;
  clearTimeout(t);
}

/** Start the bus and NetworkManager in namespace `ns`, whose eth0 leads to the LAN; wait until eth0 has IPv4. */
export async function startNetworkManager(
  ns: string,
  opts: NmOptions,
): Promise<NetworkManagerInstance> {
  const dir = mkdtempSync(join(tmpdir(), "qnt-nm-"));
  const busSock = join(dir, "bus", "system_bus_socket");
  const bus = `unix:path=${busSock}`;
  for (const d of ["bus", "nm/etc/system-connections", "nm/etc/conf.d", "nm/lib", "nm/run"])
    mkdirSync(join(dir, d), { recursive: true });
  writeFileSync(
    join(dir, "bus", "system.conf"),
    `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=${busSock}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow receive_sender="*"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
`,
  );
  // dns=none and rc-manager=unmanaged: NetworkManager must not write the machine's resolv.conf.
  writeFileSync(
    join(dir, "nm", "etc", "NetworkManager.conf"),
    [
      "[main]",
      "plugins=keyfile",
      "dns=none",
      "rc-manager=unmanaged",
      "hostname-mode=none",
      "auth-polkit=false",
      ...(opts.mode === "static" ? ["no-auto-default=*"] : []),
      "",
      "[connectivity]",
      "enabled=false",
      "",
    ].join("\n"),
  );
  const script = join(dir, "nm", "start-nm.sh");
  // `ip netns exec` has already given us a private (slave) mount namespace with this namespace's /sys.
  // /run/NetworkManager is a directory of the test, so its state outlives a restart, as on a real host.
  writeFileSync(
    script,
    `#!/bin/sh
set -e
mount -t tmpfs -o mode=755 qnt-nm-run /run
mkdir -p /run/NetworkManager /run/dbus
mount --bind ${join(dir, "nm", "run")} /run/NetworkManager
touch /run/dbus/system_bus_socket
mount --bind ${busSock} /run/dbus/system_bus_socket
mount --bind ${join(dir, "nm", "lib")} /var/lib/NetworkManager
mount --bind ${join(dir, "nm", "etc")} /etc/NetworkManager
# NetworkManager waits for udev to initialise links unless /sys is read-only (its container heuristic);
# /sys/devices stays writable for the bridge ports' sysfs settings.
mount --bind /sys/devices /sys/devices
mount -o remount,bind,ro /sys
exec "$@"
`,
  );
  chmodSync(script, 0o755);
  const env = { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: bus, LC_ALL: "C" };
  const busLog = openSync(join(dir, "bus.log"), "a");
  const busProc = spawn(
    "ip",
    [
      "netns",
      "exec",
      ns,
      "dbus-daemon",
      `--config-file=${join(dir, "bus", "system.conf")}`,
      "--nofork",
      "--nopidfile",
    ],
    { stdio: ["ignore", busLog, busLog], env },
  );
  await waitFor("the D-Bus socket", () => existsSync(busSock));
  let nmProc: ChildProcess | null = null;
  const nmcli = (args: string[]) =>
    execFileSync("nmcli", args, { encoding: "utf8", env, stdio: ["ignore", "pipe", "pipe"] });
  const running = () => {
    try {
      return nmcli(["-t", "-f", "RUNNING", "general"]).trim() === "running";
    } catch {
      return false;
    }
  };
  const startNm = async () => {
    const log = openSync(join(dir, "nm.log"), "a");
    nmProc = spawn(
      "ip",
      [
        "netns",
        "exec",
        ns,
        script,
        "NetworkManager",
        "--no-daemon",
        "--log-level=INFO",
        "--config=/etc/NetworkManager/NetworkManager.conf",
      ],
      { stdio: ["ignore", log, log], env },
    );
    await waitFor("NetworkManager to answer", running);
  };
  const inst: NetworkManagerInstance = {
    dir,
    bus,
    pid: () => nmProc?.pid ?? 0,
    nmcli,
    async restart() {
      await stopProcess(nmProc);
      await startNm();
    },
    async stop() {
      await stopProcess(nmProc);
      await stopProcess(busProc);
      rmSync(dir, { recursive: true, force: true });
    },
    log: () => {
      try {
        return execFileSync("cat", [join(dir, "nm.log")], { encoding: "utf8" });
      } catch {
        return "";
      }
    },
  };
  try {
    await startNm();
    if (opts.mode === "static") {
      nmcli([
        "connection",
        "add",
        "type",
        "ethernet",
        "ifname",
        "eth0",
        "con-name",
        "lan",
        "ipv4.method",
        "manual",
        "ipv4.addresses",
        "192.168.50.2/24",
        "ipv4.gateway",
        "192.168.50.1",
        "ipv6.method",
        "manual",
        "ipv6.addresses",
        "fd50::2/64",
      ]);
    }
    const hasV4 = () =>
      execFileSync("ip", ["-n", ns, "-4", "-o", "addr", "show", "dev", "eth0"], {
        encoding: "utf8",
      }).includes("192.168.50.");
    await waitFor("eth0 to get its IPv4 address from NetworkManager", hasV4, 60_000);
    await waitFor(
      "eth0 to be connected",
      () => /^eth0:connected$/m.test(nmcli(["-t", "-f", "DEVICE,STATE", "device"])),
      60_000,
    );
  } catch (e) {
    const log = inst.log();
    await inst.stop();
    throw new Error(`${(e as Error).message}\nNetworkManager's log:\n${log}`);
  }
  return inst;
}

/** `ip -json addr` of a namespace; the remaining lifetimes of DHCP leases tick, so they are left out. */
export function addrSnapshot(ns: string): unknown {
  const links = JSON.parse(
    execFileSync("ip", ["-n", ns, "-json", "addr", "show"], { encoding: "utf8" }),
  ) as { addr_info: Record<string, unknown>[] }[];
  for (const l of links) {
    for (const a of l.addr_info) {
      if (a.dynamic) {
        delete a.valid_life_time;
        delete a.preferred_life_time;
      }
    }
  }
  return links;
}
