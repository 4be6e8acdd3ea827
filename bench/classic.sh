#!/usr/bin/env bash
# The classic wire (issue 22), in one run, through one hub with a classic listener on loopback:
#  1. a 100 MiB file from a classic client (the team's C# stand-in, Mono) into tcpiprecvd --accept-classic, timed
#     from the command to its DoneRecievingFile, beside the same file from tcpipctl send-file (to its exit);
#  2. 10,000 classic messages from the stand-in to tcpipctl listen, each acknowledged (MessageReceived), beside
#     10,000 lines from tcpipctl send --lines, each with its receipt.
# The hub's CPU (utime+stime from /proc) is given for each. Needs mono-mcs and mono-runtime. (The stand-in's events
# file is only ever appended to: it writes through the descriptor it was started with.)
#
#   bench/classic.sh           uses .build/release (swift build -c release --static-swift-stdlib first)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
wait_for() {  # FILE PATTERN [COUNT]: until COUNT lines (default 1) match (at most 10 minutes)
    for _ in $(seq 12000); do
        [ "$(grep -c "$2" "$1" 2>/dev/null)" -ge "${3:-1}" ] && return 0
        sleep 0.05
    done
    echo "classic.sh: no '$2' in $1" >&2
    exit 1
}

scripts/build-classic-client "$w" >/dev/null
"$bin/tcpipd" --listen 127.0.0.1:0 --classic-listen 127.0.0.1:0 --log-level error > "$w/hub.out" 2>/dev/null &
hub=$!; pids+=("$hub")
wait_for "$w/hub.out" '^classic clients on'
export TCPIP_SERVER; TCPIP_SERVER=$(sed -n 's/^listening on //p' "$w/hub.out")
classic_port=$(sed -n 's/^classic clients on .*://p' "$w/hub.out")
"$bin/tcpiprecvd" --spool "$w/spool" --name archive --accept-classic -q 2>/dev/null &
pids+=($!)
"$bin/tcpipctl" listen --name ops --raw > /dev/null 2>&1 &
pids+=($!)
"$bin/tcpipctl" ping --to archive --timeout 10 >/dev/null 2>&1 || sleep 1
"$bin/tcpipctl" ping --to ops --timeout 10 >/dev/null 2>&1 || sleep 1

mkfifo "$w/commands"
mono "$w/classic-client.exe" --host 127.0.0.1 --port "$classic_port" --name olive --dir "$w/classic" \
    < "$w/commands" > "$w/events" 2>/dev/null &
pids+=($!)
exec 3> "$w/commands"
mkdir -p "$w/classic"
wait_for "$w/events" '^registered$'
archive=$(awk '$1 == "peer-add" && $3 == "archive" {print $2; exit}' "$w/events")
ops=$(awk '$1 == "peer-add" && $3 == "ops" {print $2; exit}' "$w/events")

size=$((100 << 20))
head -c "$size" /dev/urandom > "$w/random.bin"
rounds=${ROUNDS:-3}
for round in $(seq "$rounds"); do
    rm -f "$w/spool/random.bin"*; sync
    c0=$(cpu "$hub"); t0=$(now)
    echo "file $archive $w/random.bin" >&3
    wait_for "$w/events" "^file-acked $archive random.bin" "$round"
    classic_t=$(since "$t0"); classic_cpu=$(echo "$(cpu "$hub") - $c0" | bc -l)
    cmp -s "$w/random.bin" "$w/spool/random.bin" || { echo "classic.sh: the classic file differs" >&2; exit 1; }
    rm -f "$w/spool/random.bin"*; sync
    c0=$(cpu "$hub"); t0=$(now)
    "$bin/tcpipctl" send-file --to archive --direct never --progress never "$w/random.bin" > /dev/null
    ours_t=$(since "$t0"); ours_cpu=$(echo "$(cpu "$hub") - $c0" | bc -l)
    printf 'round %d, 100 MiB into tcpiprecvd: classic client %.2f s (%.0f MB/s, hub CPU %.2f s); tcpipctl send-file %.2f s (%.0f MB/s, hub CPU %.2f s); classic/ours time %.2f\n' \
        "$round" "$classic_t" "$(echo "$size / $classic_t / 1000000" | bc -l)" "$classic_cpu" \
        "$ours_t" "$(echo "$size / $ours_t / 1000000" | bc -l)" "$ours_cpu" "$(echo "$classic_t / $ours_t" | bc -l)"
done

count=10000
for round in $(seq "$rounds"); do
    c0=$(cpu "$hub")
    echo "bulk $ops $count" >&3
    wait_for "$w/events" "^bulk-acked $count " "$round"
    classic_t=$(awk '$1 == "bulk-acked" {t = $3} END {print t}' "$w/events")
    classic_cpu=$(echo "$(cpu "$hub") - $c0" | bc -l)
    c0=$(cpu "$hub"); t0=$(now)
    seq -f 'line %g' "$count" | "$bin/tcpipctl" send --to ops --lines > /dev/null
    ours_t=$(since "$t0"); ours_cpu=$(echo "$(cpu "$hub") - $c0" | bc -l)
    printf 'round %d, %d messages, each acknowledged: classic client %.2f s (hub CPU %.2f s); tcpipctl send --lines %.2f s (hub CPU %.2f s); classic/ours time %.2f\n' \
        "$round" "$count" "$classic_t" "$classic_cpu" "$ours_t" "$ours_cpu" "$(echo "$classic_t / $ours_t" | bc -l)"
done
echo "close" >&3
