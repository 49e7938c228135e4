#!/usr/bin/env bash
# Headroom of one client core: Barrage pinned to core 0 against nginx on
# core 1 replaying a streamed chat response captured from our simulator,
# so the server costs next to nothing and every limit found is the
# client's. For each binary in BINS (alternated, rate by rate, so a noisy
# machine favours none) and each rate in RATES, a constant-rate run of
# DURATION seconds; prints achieved send rate, send-lag p99, ok / failed /
# missed, the client's CPU ms per successful request, its peak RSS and
# whether it judged itself saturated.
#
#   cargo build --release -p barrage && tests/bench/headroom.sh
#   BINS="/tmp/barrage-old target/release/barrage" RATES="2000 4000 8000" tests/bench/headroom.sh
#
# Needs nginx (Debian nginx-light; installed here if missing and run as
# root) and taskset. Only loopback is used.
set -euo pipefail
cd "$(dirname "$0")/../.."
BINS=${BINS:-target/release/barrage}
RATES=${RATES:-"2000 4000 6000 8000"}
DURATION=${DURATION:-20}
TOKENS=${TOKENS:-64}
CLIENT_CPU=${CLIENT_CPU:-0}
SERVER_CPU=${SERVER_CPU:-1}
ARGS=${ARGS:-}
if ! command -v nginx >/dev/null && [ -x /usr/sbin/nginx ]; then PATH=$PATH:/usr/sbin; fi
if ! command -v nginx >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null
        PATH=$PATH:/usr/sbin
    else
        echo "headroom.sh needs nginx (apt-get install nginx-light)" >&2
        exit 1
    fi
fi
work=$(mktemp -d)
# nginx's worker runs as an unprivileged user: it must be able to read the replay.
chmod 755 "$work"
nginx_pid=
cleanup() {
    [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# Capture one response from the simulator: what nginx will serve.
first=${BINS%% *}
"$first" sim --mode zero --port 0 >"$work/sim.out" 2>/dev/null &
sim=$!
for _ in $(seq 50); do grep -q listening "$work/sim.out" 2>/dev/null && break; sleep 0.1; done
sim_addr=$(sed -n 's/.*http:\/\/\([^ ]*\).*/\1/p' "$work/sim.out")
mkdir -p "$work/www/v1/chat"
curl -sS -N -X POST "http://$sim_addr/v1/chat/completions" -H 'content-type: application/json' \
    -d "{\"model\":\"barrage-sim\",\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}],\"max_tokens\":$TOKENS,\"stream\":true,\"stream_options\":{\"include_usage\":true}}" \
    >"$work/www/v1/chat/completions"
kill -TERM $sim; wait $sim 2>/dev/null || true
chmod -R a+rX "$work/www"
events=$(grep -c '^data:' "$work/www/v1/chat/completions")

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 65536; }
worker_rlimit_nofile 131072;
http {
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    client_body_temp_path $work/body;
    server {
        listen 127.0.0.1:$port backlog=65535;
        root $work/www;
        # The static module answers POST with 405; serve the file instead.
        location = /v1/chat/completions {
            default_type text/event-stream;
            error_page 405 =200 \$uri;
        }
    }
}
EOF
taskset -c "$SERVER_CPU" nginx -c "$work/nginx.conf" &
nginx_pid=$!
for _ in $(seq 50); do curl -s -o /dev/null -X POST "http://127.0.0.1:$port/v1/chat/completions" && break; sleep 0.1; done
echo "nginx on core $SERVER_CPU replaying a $events-event stream ($TOKENS tokens); client on core $CLIENT_CPU; $DURATION s per run"

printf '%-28s %6s %9s %8s %8s %8s %8s %12s %8s %9s\n' binary rate achieved lag_p99 ok failed missed cpu_ms/ok rss_MiB saturated
for rate in $RATES; do
    for bin in $BINS; do
        n=$((${n:-0} + 1))
        out="$work/run-$n-$rate-$(echo "$bin" | tr / _)"
        python3 - "$bin" "$port" "$rate" "$DURATION" "$TOKENS" "$out" "$CLIENT_CPU" "$ARGS" >"$work/usage" <<'PY'
import resource, shlex, subprocess, sys
bin_, port, rate, duration, tokens, out, cpu, args = sys.argv[1:]
subprocess.run(["taskset", "-c", cpu, bin_, "run", "--quiet", "--target", f"http://127.0.0.1:{port}",
                "--rate", rate, "--shape", "constant", "--duration", duration, "--max-tokens", tokens,
                "--prompt-tokens", "16", "--output", out] + shlex.split(args),
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
u = resource.getrusage(resource.RUSAGE_CHILDREN)
print(u.ru_utime + u.ru_stime, u.ru_maxrss / 1024)
PY
        read -r cpu rss <"$work/usage"
        python3 - "$out/summary.json" "$bin" "$rate" "$cpu" "$rss" <<'PY'
import json, sys
path, bin_, rate, cpu, rss = sys.argv[1:]
s = json.load(open(path))["stages"][0]
ok, failed = s["succeeded"], s["failed"]
missed = s.get("missed", 0)
client = s.get("client") or {}
sat = {True: "yes", False: "no"}.get(client.get("saturated"), "-")
print(f'{bin_[-28:]:<28} {rate:>6} {s["achieved_rate"]:9.1f} {s["send_lag_ms"]["p99"]:8.3f} {ok:8d} {failed:8d} {missed:8d} '
      f'{1000 * float(cpu) / max(ok, 1):12.3f} {float(rss):8.1f} {sat:>9}')
for error, n in sorted(s.get("errors", {}).items(), key=lambda e: -e[1])[:3]:
    print(f'       {n} × {error[:150]}')
PY
    done
done
