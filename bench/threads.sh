#!/usr/bin/env bash
# The hub's connection loops on this machine: one, two and four senders at once over TLS into one receiver, against a
# hub with `--threads 1` and `--threads 2`, alternating (twice each), 256 MiB per sender. Prints GB/s per row; not part
# of the tests or of bench/run.sh (it chose the default of `--threads`: one per core, less one).
#
#   bench/threads.sh            uses .build/release (swift build -c release --static-swift-stdlib first)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.build/release
w=$(mktemp -d)
hub=""; receiver=""
trap '[ -n "$receiver" ] && kill $receiver 2>/dev/null; [ -n "$hub" ] && kill $hub 2>/dev/null; rm -rf "$w"' EXIT
head -c $((256 << 20)) /dev/urandom > "$w/random.bin"
for node in thub trecv s1 s2 s3 s4; do "$bin/tcpipctl" id --state-dir "$w/$node" > "$w/$node.id"; done
{ echo "$(cat "$w/trecv.id") tbench receiver"; for i in 1 2 3 4; do echo "$(cat "$w/s$i.id") s$i"; done; } > "$w/peers"
now() { date +%s.%N; }
for threads in 1 2 1 2; do
    "$bin/tcpipd" --listen 127.0.0.1:0 --log-level error --state-dir "$w/thub" --authorized-peers "$w/peers" \
        --threads "$threads" > "$w/hub.out" 2>/dev/null &
    hub=$!
    for _ in $(seq 100); do grep -q '^listening' "$w/hub.out" 2>/dev/null && break; sleep 0.05; done
    export TCPIP_SERVER; TCPIP_SERVER=$(sed -n 's/^listening on //p' "$w/hub.out")
    export TCPIP_HUB_ID; TCPIP_HUB_ID=$(cat "$w/thub.id")
    rm -rf "$w/spool"
    TCPIP_STATE_DIR="$w/trecv" "$bin/tcpiprecvd" --spool "$w/spool" --name tbench -q 2>/dev/null &
    receiver=$!
    TCPIP_STATE_DIR="$w/s1" "$bin/tcpipctl" ping --to tbench --timeout 10 >/dev/null 2>&1 || sleep 1
    line="--threads $threads:"
    for n in 1 2 4; do
        rm -f "$w/spool"/*; sync
        t0=$(now); started=()
        for i in $(seq "$n"); do
            TCPIP_STATE_DIR="$w/s$i" "$bin/tcpipctl" send-file --to tbench --progress never --as "f$i.bin" \
                "$w/random.bin" >/dev/null &
            started+=($!)
        done
        wait "${started[@]}"
        t=$(echo "$(now) - $t0" | bc -l)
        line="$line $n sender(s) $(printf %.3f "$(echo "$n * 268435456 / $t / 1000000000" | bc -l)") GB/s;"
    done
    echo "$line"
    kill "$receiver" "$hub"; wait "$receiver" "$hub" 2>/dev/null || true
    receiver=""; hub=""
done
