#!/bin/bash
# Baseline for bench/boot.ts: the seed's section 3 done by hand (tuntap, bridge, one plain QEMU line per VM).
# Run inside a throwaway network namespace (bench/boot.ts does: ip netns exec NS bash manual.sh ...).
#   manual.sh up   N DIR KERNEL INITRD "BASE_CMDLINE"   -> returns once every VM pinged each peer
#   manual.sh down N DIR
# Readiness: the guest's `qnet-guest-ready` line on its serial console. The seed's command lines have no
# guest agent, so the pings are typed into each guest's serial console shell (a QEMU `pipe:` chardev).
set -eu
cmd=$1 n=$2 dir=$3
mac() { printf '52:54:00:12:34:%02x' $((0x56 + $1)); }
ipof() { echo "10.0.2.$(($1 + 2))"; }

# Poll a log until it holds a line, or fail after $3 seconds.
wait_line() {
  local deadline=$((SECONDS + $3))
  until grep -q "$2" "$1" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then echo "manual.sh: timeout waiting for '$2' in $1" >&2; return 1; fi
    sleep 0.05
  done
}

if [ "$cmd" = up ]; then
  kernel=$4 initrd=$5 base=$6
  # Host side, as in the seed (ip instead of the deprecated brctl/ifconfig; same steps).
  for ((i = 0; i < n; i++)); do ip tuntap add dev "tap$i" mode tap; done
  ip link add br0 type bridge
  for ((i = 0; i < n; i++)); do ip link set "tap$i" master br0; done
  for ((i = 0; i < n; i++)); do ip link set "tap$i" up; done
  ip addr add 10.0.2.1/24 dev br0
  ip link set br0 up
  # One plain QEMU command line per VM, with the seed's network arguments.
  for ((i = 0; i < n; i++)); do
    mkfifo "$dir/vm$i.in" "$dir/vm$i.out"
    cat "$dir/vm$i.out" >"$dir/vm$i.log" 2>/dev/null &
    echo $! >"$dir/vm$i.cat.pid"
    qemu-system-x86_64 -m 256 -display none \
      -kernel "$kernel" -initrd "$initrd" \
      -append "$base qnet.hostname=vm$i qnet.nic0=$(mac $i),$(ipof $i)/24,10.0.2.1" \
      -netdev "tap,id=net0,ifname=tap$i,script=no,downscript=no" \
      -device "e1000,netdev=net0,mac=$(mac $i)" \
      -serial "pipe:$dir/vm$i" -pidfile "$dir/vm$i.pid" -daemonize
  done
  for ((i = 0; i < n; i++)); do wait_line "$dir/vm$i.log" "qnet-guest-ready vm$i" 120; done
  # Each guest pings each of its peers (typed into its console; the quotes keep the echo from matching).
  for ((i = 0; i < n; i++)); do
    peers=""
    for ((j = 0; j < n; j++)); do [ $j -ne $i ] && peers="$peers $(ipof $j)"; done
    # A link may get carrier just after the ready line (e1000): retry each ping, up to 15 tries of 1 s.
    printf 'ok=1; for p in%s; do n=0; until ping -c1 -W1 $p >/dev/null; do n=$((n+1)); [ $n -lt 15 ] || { ok=0; break; }; done; done; [ $ok = 1 ] && echo PINGS""-OK || echo PINGS""-FAIL\n' \
      "$peers" >"$dir/vm$i.in"
  done
  for ((i = 0; i < n; i++)); do
    wait_line "$dir/vm$i.log" "PINGS-\(OK\|FAIL\)" 60
    if grep -q PINGS-FAIL "$dir/vm$i.log"; then echo "manual.sh: vm$i could not ping a peer" >&2; exit 1; fi
  done
elif [ "$cmd" = down ]; then
  # Read every pidfile first: QEMU deletes its own when it exits.
  pids=() cats=()
  for ((i = 0; i < n; i++)); do
    pids+=("$(cat "$dir/vm$i.pid" 2>/dev/null || true)")
    cats+=("$(cat "$dir/vm$i.cat.pid" 2>/dev/null || true)")
  done
  for pid in "${pids[@]}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    [ -n "$pid" ] || continue
    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  done
  for pid in "${cats[@]}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done
  for ((i = 0; i < n; i++)); do ip link del "tap$i" 2>/dev/null || true; done
  ip link del br0 2>/dev/null || true
else
  echo "usage: manual.sh up|down N DIR ..." >&2
  exit 2
fi
