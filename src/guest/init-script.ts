// The built-in guest's /init (busybox sh) and udhcpc script, and the kernel command line that configures it.
import { checkedName } from "../model/names.js";

import { FW_CFG_AUTHORIZED_KEYS, FW_CFG_HOST_KEY } from "./ssh.js";

/** The line /init prints on the console once the guest is configured: `qnet-guest-ready <hostname>`. */
export const READY_PREFIX = "qnet-guest-ready";

/** Where /init finds its modules and the guest agent inside the initramfs. */
export const GUEST_MODULE_DIR = "/lib/modules/qnet";
export const GUEST_UDHCPC_SCRIPT = "/etc/qnet/udhcpc.sh";
/** Applies a guest's `qnet.*` settings: run by /init at boot, and through the agent after a restore. */
export const GUEST_CONFIGURE_SCRIPT = "/etc/qnet/configure.sh";

/** One NIC's configuration as the kernel command line carries it. */
export interface GuestNic {
  mac: string;
  ip: string | null;
  prefix: number | null;
  gateway: string | null;
  dhcp: boolean;
  /** The interface MTU, when the network needs one (a network spanning hosts over VXLAN). */
  mtu?: number | null;
}

/** Kernel parameters that keep a small guest's boot fast and quiet on the serial console. */
export const BASE_CMDLINE = [
  "console=ttyS0",
  "quiet",
  "panic=-1",
  "8250.nr_uarts=1",
  "i8042.noaux",
  "i8042.nokbd",
  "tsc=reliable",
  "no_timer_check",
  "random.trust_cpu=on",
];

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/**
 * The kernel command line for a built-in guest:
 * `console=ttyS0 quiet panic=-1 ... qnet.hostname=NAME qnet.nic0=MAC,IP/PREFIX[,GW] | qnet.nic0=MAC,dhcp [qnet.dns=IP]`,
 * with `,MTU` as a fourth field when the NIC needs one (`MAC,dhcp,,1450`).
 * NIC numbers follow the array order. Every value is checked (no spaces or shell metacharacters can pass).
 */
export function guestCmdline(p: GuestParams): string {
  const line = [...BASE_CMDLINE, ...guestParams(p)].join(" ");
  if (!/^[A-Za-z0-9_.,:/= -]+$/.test(line))
    throw new Error("guest command line has unsafe characters");
  return line;
}

/** A guest's identity and network: what the kernel line carries at boot, and a restore hands over. */
export interface GuestParams {
  hostname: string;
  nics: readonly GuestNic[];
  dns?: string | null;
}

/**
 * The `qnet.*` words of a guest's settings, each checked (no space or shell metacharacter can pass):
 * the kernel line's tail at a cold boot, the configure script's arguments after a restore.
 */
export function guestParams(p: GuestParams): string[] {
  checkedName(p.hostname, "guest hostname");
  const parts = [`qnet.hostname=${p.hostname}`];
  p.nics.forEach((nic, i) => {
    const mac = nic.mac.toLowerCase();
    if (!MAC_RE.test(mac)) throw new Error(`nic ${i}: bad MAC address ${JSON.stringify(nic.mac)}`);
    const mtu = nic.mtu ?? null;
    if (mtu !== null && (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535))
      throw new Error(`nic ${i}: bad MTU ${String(mtu)}`);
    if (nic.dhcp || nic.ip === null) {
      // DHCP, or no address: the link is brought up and left unconfigured.
      const how = nic.dhcp ? "dhcp" : "none";
      parts.push(`qnet.nic${i}=${mac},${how}${mtu !== null ? `,,${mtu}` : ""}`);
      return;
    }
    if (!IPV4_RE.test(nic.ip))
      throw new Error(`nic ${i}: bad IPv4 address ${JSON.stringify(nic.ip)}`);
    const prefix = nic.prefix ?? 24;
    if (!Number.isInteger(prefix) || prefix < 0 || prefix > 32) {
      throw new Error(`nic ${i}: bad prefix length ${String(nic.prefix)}`);
    }
    let value = `${mac},${nic.ip}/${prefix}`;
    if (nic.gateway !== null) {
      if (!IPV4_RE.test(nic.gateway)) {
        throw new Error(`nic ${i}: bad gateway ${JSON.stringify(nic.gateway)}`);
      }
      value += `,${nic.gateway}`;
    }
    if (mtu !== null) value += `${nic.gateway !== null ? "" : ","},${mtu}`;
    parts.push(`qnet.nic${i}=${value}`);
  });
  if (p.dns !== undefined && p.dns !== null) {
    if (!IPV4_RE.test(p.dns)) throw new Error(`bad DNS server ${JSON.stringify(p.dns)}`);
    parts.push(`qnet.dns=${p.dns}`);
  }
  return parts;
}

/**
 * The words that make a guest restored from a template this VM: each NIC's template MAC
 * (`qnet.wasN=`: the guest gives that interface the NIC's own MAC first) and the clock, which
 * resumes at the time the template was saved.
 */
export function restoreParams(templateMacs: readonly string[], now: Date): string[] {
  return [
    ...templateMacs.map((m, i) => {
      if (!MAC_RE.test(m)) throw new Error(`template MAC ${JSON.stringify(m)}`);
      return `qnet.was${i}=${m.toLowerCase()}`;
    }),
    `qnet.time=${Math.floor(now.getTime() / 1000)}`,
  ];
}

/** Options for rendering /init. */
export interface InitScriptOptions {
  /** Module file base names (without .ko) in load order, found under GUEST_MODULE_DIR. */
  modules: readonly string[];
  /** Path of the qemu-ga binary inside the initramfs. */
  qemuGa: string;
  /** Directories holding qemu-ga's shared libraries (for LD_LIBRARY_PATH). */
  libDirs: readonly string[];
}

const SAFE_WORD = /^[A-Za-z0-9_./-]+$/;

/** Render /init: a busybox sh script; it reads its per-VM settings from /proc/cmdline. Pure. */
export function renderInitScript(o: InitScriptOptions): string {
  for (const w of [...o.modules, o.qemuGa, ...o.libDirs]) {
    if (!SAFE_WORD.test(w)) throw new Error(`unsafe word in /init: ${JSON.stringify(w)}`);
  }
  const modules = o.modules.join(" ");
  const libPath = o.libDirs.join(":");
  return `#!/bin/busybox sh
# qnet built-in guest /init (AUTO-GENERATED by qnet; settings come from /proc/cmdline).
/bin/busybox mkdir -p /proc /sys /dev /run /tmp /var /etc /bin /sbin /usr/bin /usr/sbin /root
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev 2>/dev/null
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
ln -sf /run /var/run
ln -sf /proc/self/fd /dev/fd
exec </dev/console >/dev/console 2>&1

for m in ${modules}; do
  insmod ${GUEST_MODULE_DIR}/"$m".ko || echo "qnet: insmod $m failed"
done
ip link set lo up

# Identity and network from the kernel line (a restored template gets the same through the agent).
set -f  # split /proc/cmdline into words without globbing
${GUEST_CONFIGURE_SCRIPT} $(cat /proc/cmdline)
set +f

# No udev: name the virtio-serial ports the way udev would (/dev/virtio-ports/<name>).
mkdir -p /dev/virtio-ports
tries=0
while [ $tries -lt 30 ] && ! ls /sys/class/virtio-ports/*/name >/dev/null 2>&1; do
  tries=$((tries + 1)); sleep 0.1
done
for p in /sys/class/virtio-ports/vport*; do
  [ -e "$p/name" ] || continue
  name=$(cat "$p/name")
  case "$name" in *[!A-Za-z0-9._-]*|"") continue ;; esac
  ln -sf "../\${p##*/}" "/dev/virtio-ports/$name"
done

# The guest agent, respawned if it dies.
if [ -e /dev/virtio-ports/org.qemu.guest_agent.0 ]; then
  (
    while true; do
      LD_LIBRARY_PATH=${libPath} ${o.qemuGa} -m virtio-serial \\
        -p /dev/virtio-ports/org.qemu.guest_agent.0 -f /run/qemu-ga.pid -t /run
      sleep 1
    done
  ) </dev/null >/dev/null 2>&1 &
else
  echo "qnet: no guest agent port"
fi

echo "${READY_PREFIX} $(hostname)"

# A shell on the serial console for \`qnet console\`, respawned; PID 1 never exits.
while true; do
  setsid cttyhack sh -l
  sleep 1
done
`;
}

/**
 * The configure script: applies `qnet.hostname=`, `qnet.dns=`, `qnet.nicN=` (and after a restore
 * `qnet.wasN=` and `qnet.time=`) given as arguments. Waits for each link's carrier before it returns.
 */
export function renderConfigureScript(
  o: { dropbear?: string | null; libDirs?: readonly string[] } = {},
): string {
  for (const w of [...(o.libDirs ?? []), ...(o.dropbear ? [o.dropbear] : [])]) {
    if (!SAFE_WORD.test(w))
      throw new Error(`unsafe word in the configure script: ${JSON.stringify(w)}`);
  }
  const ssh = o.dropbear ? sshBlock(o.dropbear, (o.libDirs ?? []).join(":")) : "";
  // Builtins wherever a command would fork: after a restore every new code path costs TCG a translation.
  return `#!/bin/sh
# qnet built-in guest network and identity (AUTO-GENERATED by qnet): the qnet.* words are the arguments.
HOSTNAME=qnet-guest
DNS=
NICS=
WAS=
for arg in "$@"; do
  case "$arg" in
    qnet.hostname=*) HOSTNAME=\${arg#qnet.hostname=} ;;
    qnet.dns=*) DNS=\${arg#qnet.dns=} ;;
    qnet.nic[0-9]*=*) NICS="$NICS \${arg#*=}" ;;
    qnet.was[0-9]*=*) WAS="$WAS \${arg#*=}" ;;
    qnet.time=*) date -s "@\${arg#qnet.time=}" >/dev/null ;;
  esac
done
case "$HOSTNAME" in *[!A-Za-z0-9_-]*|"") HOSTNAME=qnet-guest ;; esac
echo "$HOSTNAME" > /proc/sys/kernel/hostname
echo "$HOSTNAME" > /etc/hostname

[ -d /run/qnet ] || mkdir -p /run/qnet
: > /etc/resolv.conf
if [ -n "$DNS" ]; then
  echo "nameserver $DNS" > /etc/resolv.conf
  : > /run/qnet/static-dns
fi

# IFC := the interface whose MAC address is $1 (drivers may still be probing: wait up to 5 s).
find_iface() {
  tries=0
  while [ $tries -lt 50 ]; do
    for d in /sys/class/net/*; do
      read -r a < "$d/address" 2>/dev/null || continue
      if [ "$a" = "$1" ]; then IFC=\${d##*/}; return 0; fi
    done
    tries=$((tries + 1))
    sleep 0.1
  done
  return 1
}

# A restored template: interface N carries the template's MAC; give it the NIC's own (which also sets
# QEMU's receive filter) before anything looks for it.
set -f; set -- $NICS; set +f
for old in $WAS; do
  new=\${1%%,*}; shift
  [ -n "$new" ] || break
  find_iface "$old" && ip link set dev "$IFC" address "$new"
done

HOSTS_IP=127.0.1.1
LINKS=""
for nic in $NICS; do
  set -f; old_ifs=$IFS; IFS=,; set -- $nic; IFS=$old_ifs; set +f
  mac=$1; addr=$2; gw=$3; mtu=$4
  if ! find_iface "$mac"; then echo "qnet: no interface with MAC $mac"; continue; fi
  ifc=$IFC
  case "$mtu" in *[!0-9]*) mtu= ;; esac
  if [ -n "$mtu" ]; then ip link set "$ifc" mtu "$mtu" || echo "qnet: cannot set MTU $mtu on $ifc"; fi
  ip link set "$ifc" up
  LINKS="$LINKS $ifc"
  case "$addr" in
    dhcp)
      udhcpc -i "$ifc" -t 20 -T 1 -A 1 -b -S -O mtu -s ${GUEST_UDHCPC_SCRIPT} -x "hostname:$HOSTNAME" \\
        || echo "qnet: udhcpc on $ifc failed"
      ;;
    none|"") ;;
    *)
      ip addr add "$addr" dev "$ifc" || echo "qnet: cannot set $addr on $ifc"
      [ "$HOSTS_IP" = 127.0.1.1 ] && HOSTS_IP=\${addr%/*}
      if [ -n "$gw" ]; then ip route add default via "$gw" dev "$ifc" 2>/dev/null; fi
      ;;
  esac
done

# Ready means reachable: wait (5 s at most in all) for each link's carrier; e1000 takes about 2 s.
tries=0
for ifc in $LINKS; do
  while [ $tries -lt 50 ]; do
    read -r c < "/sys/class/net/$ifc/carrier" 2>/dev/null && [ "$c" = 1 ] && break
    tries=$((tries + 1)); sleep 0.05
  done
done

printf '127.0.0.1 localhost\\n::1 localhost ip6-localhost ip6-loopback\\n%s %s\\n' \\
  "$HOSTS_IP" "$HOSTNAME" > /etc/hosts
${ssh}`;
}

/**
 * Start dropbear when QEMU delivered both keys through fw_cfg (see guest/ssh.ts): the host key qnet pinned
 * and root's authorized keys. Password logins are off. It forks at once: nothing waits for it. Part of the
 * configure script, so a VM restored from a template (whose keys were empty) starts it with its own keys.
 */
function sshBlock(dropbear: string, libPath: string): string {
  return `# SSH: dropbear with the pinned host key and the lab's keys, both from QEMU's fw_cfg.
FW=/sys/firmware/qemu_fw_cfg/by_name
# A restored template's fw_cfg directory is the template's (empty keys): read it anew.
if [ -n "$WAS" ] && [ -e ${GUEST_MODULE_DIR}/qemu_fw_cfg.ko ]; then
  rmmod qemu_fw_cfg 2>/dev/null && insmod ${GUEST_MODULE_DIR}/qemu_fw_cfg.ko
fi
# Both keys there and not empty (a template's are): their sysfs size says so (raw's stat does not).
hk=0; ak=0
read -r hk < "$FW/${FW_CFG_HOST_KEY}/size" 2>/dev/null
read -r ak < "$FW/${FW_CFG_AUTHORIZED_KEYS}/size" 2>/dev/null
if [ "\${hk:-0}" -gt 0 ] && [ "\${ak:-0}" -gt 0 ]; then
  [ -f /run/dropbear.pid ] && read -r old < /run/dropbear.pid && kill "$old" 2>/dev/null
  mkdir -p /etc/dropbear /root/.ssh
  chmod 700 /root /root/.ssh /etc/dropbear
  (
    umask 077
    cat "$FW/${FW_CFG_HOST_KEY}/raw" > /etc/dropbear/host_key
    cat "$FW/${FW_CFG_AUTHORIZED_KEYS}/raw" > /root/.ssh/authorized_keys
  )
  LD_LIBRARY_PATH=${libPath} ${dropbear} -r /etc/dropbear/host_key -s -p 22 -P /run/dropbear.pid -E \\
    </dev/null >/dev/null 2>/run/dropbear.log || echo "qnet: dropbear failed: $(cat /run/dropbear.log)"
fi
`;
}

/** The udhcpc event script: applies address, default route and resolv.conf (with search domain). */
export function renderUdhcpcScript(): string {
  return `#!/bin/sh
# qnet built-in guest udhcpc script (AUTO-GENERATED by qnet).
case "$1" in
  deconfig)
    ip -4 addr flush dev "$interface"
    ip link set "$interface" up
    ;;
  bound|renew)
    if ! ip -4 addr show dev "$interface" | grep -q "inet $ip/"; then
      ip -4 addr flush dev "$interface"
      ip addr add "$ip/\${mask:-24}" dev "$interface"
    fi
    # DHCP option 26 (asked for with -O mtu): applied, and noted for \`qnet check\` and the tests.
    case "$mtu" in
      ""|*[!0-9]*) ;;
      *) ip link set "$interface" mtu "$mtu"; echo "$mtu" > "/run/qnet/dhcp-mtu-$interface" ;;
    esac
    for r in $router; do
      ip route add default via "$r" dev "$interface" 2>/dev/null
      break
    done
    if [ ! -e /run/qnet/static-dns ] && [ -n "$dns" ]; then
      {
        [ -n "$domain" ] && echo "search $domain"
        for d in $dns; do echo "nameserver $d"; done
      } > /etc/resolv.conf
    fi
    ;;
esac
exit 0
`;
}
