#!/usr/bin/env bash
# Memory with run length: REQUESTS (default 1,000,000) short streamed
# requests at RATE/s against `barrage sim --mode zero`, sampling Barrage's
# RSS every 20 s; then the time and memory `barrage report` takes to rebuild
# the summary and reports from the records.
#
#   cargo build --release -p barrage && tests/bench/million.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-$PWD/target/release/barrage}
REQUESTS=${REQUESTS:-1000000}
RATE=${RATE:-2500}
work=${WORK:-$(mktemp -d)}
"$BIN" sim --mode zero --port 0 >"$work/sim.out" 2>/dev/null &
sim=$!
trap 'kill $sim 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q listening "$work/sim.out" 2>/dev/null && break; sleep 0.1; done
addr=$(sed -n 's/.*http:\/\/\([^ ]*\).*/\1/p' "$work/sim.out")
/usr/bin/time -f "run: %e s wall, %U s user, %S s sys, peak RSS %M KiB" \
    "$BIN" run --quiet --target "http://$addr" --rate "$RATE" --requests "$REQUESTS" --max-tokens 8 \
    --output "$work/run" >"$work/run.out" &
runner=$!
sleep 3
pid=$(pgrep -f "^$BIN run --quiet --target http://$addr" | head -1 || true)
echo "seconds  rss_MiB  records"
while [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; do
    rss=$(awk '/VmRSS/ {print $2}' /proc/"$pid"/status 2>/dev/null || echo 0)
    echo "$SECONDS $((rss / 1024)) $(wc -l <"$work/run/records.jsonl")"
    sleep 20
done
wait $runner
ls -l "$work/run/records.jsonl"
/usr/bin/time -f "report: %e s wall, %U s user, peak RSS %M KiB" "$BIN" report "$work/run" --output "$work/rebuilt" >/dev/null
echo "results in $work"
