# Sourced by the bench scripts (after `set -euo pipefail`): from the repository's root, $bin (the release build), $w
# (a work directory under BENCH_DIR, else /tmp), pids (programs to stop on exit; a script with more to undo defines
# on_exit, run after they are stopped and before $w goes), and a few helpers.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=$(pwd)/.build/release
w=$(mktemp -d -p "${BENCH_DIR:-/tmp}")
pids=()
on_exit() { :; }
cleanup() {
    # A program started in the background through a shell function is the child of a subshell: stop both.
    for p in "${pids[@]}"; do pkill -P "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true  # a hub told to stop lets its clients go first: its directory goes after it
    on_exit
    rm -rf "$w"
}
trap cleanup EXIT
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc -l; }
cpu() { awk '{print ($14 + $15) / 100}' "/proc/$1/stat"; }
rate() { printf %.3f "$(echo "$1 / $2 / 1000000000" | bc -l)"; }  # bytes, seconds: GB/s
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR + 1) / 2)]}'; }
