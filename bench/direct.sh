#!/usr/bin/env bash
# Direct transfers against the relay path, in one run (issue 21):
#  1. loopback, plaintext, 1 GiB verified and synced: send-file point to point (the default), through the hub
#     (--direct never), and three `socat -b 131072` (sender -> relay -> a receiver writing the file); the hub's CPU
#     (utime+stime from /proc) during each of ours. Alternating, twice each.
#  2. three machines in network namespaces, the hub's link shaped to 100 Mbit/s (tc, both ways), alice <-> bob not:
#     64 MiB direct and relayed. Needs root, iproute2 and socat.
#
#   bench/direct.sh            uses .build/release (swift build -c release --static-swift-stdlib first)
#   BENCH_DIR=/dev/shm bench/direct.sh    the same in memory: without the disk's writeback, which varies ±40 % here
set -euo pipefail
. "$(dirname "$0")/lib.sh"
ns=tcpipbench$$
on_exit() { for h in hub alice bob sw; do ip netns del "$ns-$h" 2>/dev/null || true; done; }

size=$((1 << 30))
head -c "$size" /dev/urandom > "$w/random.bin"
"$bin/tcpipd" --listen 127.0.0.1:0 --log-level error > "$w/hub.out" 2>/dev/null &
hub=$!; pids+=("$hub")
for _ in $(seq 100); do grep -q '^listening' "$w/hub.out" 2>/dev/null && break; sleep 0.05; done
export TCPIP_SERVER; TCPIP_SERVER=$(sed -n 's/^listening on //p' "$w/hub.out")
"$bin/tcpiprecvd" --spool "$w/spool" --name dbench -q 2>/dev/null &
pids+=($!)
"$bin/tcpipctl" ping --to dbench --timeout 10 >/dev/null 2>&1 || sleep 1

socat_relay() {
    local p1=$((20000 + RANDOM % 20000)) p2=$((40000 + RANDOM % 20000))
    socat -b 131072 -u TCP-LISTEN:$p2,reuseaddr,bind=127.0.0.1 OPEN:"$w/socat.out",creat,trunc &
    local r=$!
    socat -b 131072 TCP-LISTEN:$p1,reuseaddr,bind=127.0.0.1 TCP:127.0.0.1:$p2 &
    local m=$!
    sleep 0.2
    local t0; t0=$(now)
    socat -b 131072 -u OPEN:"$w/random.bin" TCP:127.0.0.1:$p1
    wait "$r"; sync "$w/socat.out"; kill "$m" 2>/dev/null || true
    rate "$size" "$(echo "$(now) - $t0" | bc -l)"
}
ours() {  # --direct mode
    rm -rf "$w/spool"/*.bin; sync
    local c0 t0 t; c0=$(cpu "$hub"); t0=$(now)
    "$bin/tcpipctl" send-file --to dbench --direct "$1" --progress never "$w/random.bin" >/dev/null
    t=$(echo "$(now) - $t0" | bc -l)
    echo "$(rate "$size" "$t") GB/s, hub CPU $(printf %.2f "$(echo "$(cpu "$hub") - $c0" | bc -l)") s"
}
rounds=${ROUNDS:-5}
d=(); r=(); s=()
for round in $(seq "$rounds"); do
    d+=("$(ours auto)"); r+=("$(ours never)"); s+=("$(socat_relay)")
    echo "loopback 1 GiB, round $round: direct ${d[-1]}; relay ${r[-1]}; socat relay ${s[-1]} GB/s"
done
md=$(printf '%s\n' "${d[@]}" | cut -d' ' -f1 | median); mr=$(printf '%s\n' "${r[@]}" | cut -d' ' -f1 | median)
ms=$(printf '%s\n' "${s[@]}" | median)
echo "loopback 1 GiB, medians of $rounds: direct $md, relay $mr, socat relay $ms GB/s;" \
    "direct/socat $(printf %.2f "$(echo "$md / $ms" | bc -l)"), direct/relay $(printf %.2f "$(echo "$md / $mr" | bc -l)")"

[ "$(id -u)" -eq 0 ] && command -v ip >/dev/null || { echo "namespaces: skipped (needs root and iproute2)"; exit 0; }
ip netns add "$ns-sw"; ip -n "$ns-sw" link add br0 type bridge; ip -n "$ns-sw" link set br0 up
i=1
for h in hub alice bob; do
    ip netns add "$ns-$h"
    ip link add eth0 netns "$ns-$h" type veth peer name "$h" netns "$ns-sw"
    ip -n "$ns-sw" link set "$h" master br0 up
    ip -n "$ns-$h" addr add "10.202.0.$i/24" dev eth0; ip -n "$ns-$h" link set eth0 up; ip -n "$ns-$h" link set lo up
    i=$((i + 1))
done
# The hub's link at 100 Mbit/s both ways: its own side, and the bridge's port towards it.
ip netns exec "$ns-hub" tc qdisc add dev eth0 root tbf rate 100mbit burst 128kb latency 50ms
ip netns exec "$ns-sw" tc qdisc add dev hub root tbf rate 100mbit burst 128kb latency 50ms
head -c $((64 << 20)) /dev/urandom > "$w/ns.bin"
ip netns exec "$ns-hub" "$bin/tcpipd" --listen 10.202.0.1:9999 --insecure-plaintext --insecure-no-token \
    --log-level error >/dev/null 2>&1 &
pids+=($!)
sleep 0.5
ip netns exec "$ns-bob" "$bin/tcpiprecvd" --server 10.202.0.1:9999 --insecure-plaintext --name bob \
    --spool "$w/nsspool" --direct-listen 10.202.0.3:7000 -q 2>/dev/null &
pids+=($!)
sleep 1
for round in $(seq 3); do
    line="namespaces, hub link 100 Mbit/s, 64 MiB, round $round:"
    for mode in auto never; do
        rm -f "$w/nsspool"/*.bin; sync
        t0=$(now)
        ip netns exec "$ns-alice" "$bin/tcpipctl" send-file --server 10.202.0.1:9999 --insecure-plaintext \
            --to bob --direct "$mode" --progress never "$w/ns.bin" >/dev/null
        line="$line $([ "$mode" = auto ] && echo direct || echo relay) $(rate $((64 << 20)) "$(echo "$(now) - $t0" | bc -l)") GB/s;"
    done
    echo "$line"
done
# Behind a firewall that drops alice's packets to bob's direct port: how long a small file takes, through the hub,
# against the same file with the direct path open (the race gives up after 1.5 s).
head -c 65536 /dev/urandom > "$w/small.bin"
small() {
    rm -f "$w/nsspool"/small*.bin; sync
    local t0; t0=$(now)
    ip netns exec "$ns-alice" "$bin/tcpipctl" send-file --server 10.202.0.1:9999 --insecure-plaintext --to bob \
        --progress never "$w/small.bin" >/dev/null
    printf %.2f "$(echo "$(now) - $t0" | bc -l)"
}
open_path=(); blocked=()
for _ in 1 2 3; do open_path+=("$(small)"); done
ip netns exec "$ns-bob" nft "add table inet f; add chain inet f in { type filter hook input priority 0; }; add rule inet f in ip saddr 10.202.0.2 tcp dport 7000 drop"
for _ in 1 2 3; do blocked+=("$(small)"); done
echo "namespaces, 64 KiB: direct path open ${open_path[*]} s; alice -> bob dropped (relay after the race) ${blocked[*]} s"
