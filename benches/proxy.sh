#!/usr/bin/env bash
# Proxy overhead benchmark: wrk against a fast upstream (nginx answering a fixed JSON prediction),
# directly, through `anchorwatch proxy`, and through a peer: nginx itself as a keep-alive reverse
# proxy (one worker, like the proxy's one process), for a plain forwarded route and for a captured
# predict route (rows stored by the local collector; nginx captures nothing). Prints throughput and
# p50/p99 latency of each, and the overhead. Goal (issue 7): p99 overhead under 1 ms, throughput at
# least 90% of direct. The peer shows what any proxy costs when wrk, the upstream and the proxy
# share the machine's cores at saturation.
#
#
# Then the same routes at fixed rates (RATES, requests a second), with the open-loop load generator
# benches/rate.rs (RATE_BIN): latency counted from when each request was due, so it shows what
# the proxy adds at a given traffic rather than at saturation.
#
# Needs: wrk and nginx (Debian: apt-get install -y --no-install-recommends wrk nginx-light), and
# the release binary (cargo build --release). Tunables: DURATION (10s), CONNECTIONS (16),
# THREADS (1), ANCHORWATCH_BIN (target/release/anchorwatch), RATES ("5000 20000"), RATE_SECONDS
# (10), RATE_BIN (the built benches/rate.rs; `make bench-proxy` passes it; without it the
# fixed-rate runs are skipped).
set -euo pipefail

cd "$(dirname "$0")/.."
BIN=${ANCHORWATCH_BIN:-target/release/anchorwatch}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-16}
THREADS=${THREADS:-1}
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

for tool in wrk "$NGINX" curl python3; do
    command -v "$tool" >/dev/null || { echo "missing: $tool (see the header of $0)"; exit 1; }
done
[ -x "$BIN" ] || { echo "missing $BIN: build it with cargo build --release"; exit 1; }

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_http() {
    for _ in $(seq 1 200); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "not ready: $1"; exit 1
}

UP_PORT=$(free_port)
PEER_PORT=$(free_port)
PROXY_PORT=$(free_port)
METRICS_PORT=$(free_port)

# Starts nginx with one worker in $WORK/<name>, the http block's server part read from stdin,
# and waits until it answers on <port>.
start_nginx() {
    local name=$1 port=$2 dir="$WORK/$1"
    mkdir -p "$dir"
    {
        cat <<EOF
worker_processes 1;
daemon off;
error_log $dir/error.log warn;
pid $dir/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $dir;
    proxy_temp_path $dir;
    fastcgi_temp_path $dir;
    uwsgi_temp_path $dir;
    scgi_temp_path $dir;
EOF
        cat
        echo "}"
    } >"$dir/nginx.conf"
    "$NGINX" -p "$dir" -c "$dir/nginx.conf" &
    PIDS+=($!)
    wait_http "http://127.0.0.1:$port/ping"
}

# The upstream: keep-alive, a fixed answer of the plain JSON shape.
start_nginx upstream "$UP_PORT" <<EOF
    server {
        listen 127.0.0.1:$UP_PORT;
        default_type application/json;
        location / { return 200 '{"prediction": "good", "scores": [0.75, 0.25]}'; }
    }
EOF

# The peer: nginx as a reverse proxy in front of the same upstream, with pooled keep-alive
# connections, forwarding bodies unbuffered as the proxy does.
start_nginx peer "$PEER_PORT" <<EOF
    upstream predictor {
        server 127.0.0.1:$UP_PORT;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:$PEER_PORT;
        location / {
            proxy_pass http://predictor;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_request_buffering off;
            proxy_buffering off;
        }
    }
EOF

# The proxy, capturing into a local collector.
cat >"$WORK/anchorwatch.toml" <<EOF
[store]
root = "store"

[[models]]
name = "credit"
[models.schema]
prediction = "categorical"
scores = ["good", "bad"]
features = [
  { name = "age", kind = "numerical" },
  { name = "region", kind = "categorical" },
  { name = "vip", kind = "boolean" },
]
EOF
RUST_LOG=warn "$BIN" proxy --listen "127.0.0.1:$PROXY_PORT" --metrics-listen "127.0.0.1:$METRICS_PORT" \
    --upstream "http://127.0.0.1:$UP_PORT" --model credit --config "$WORK/anchorwatch.toml" &
PIDS+=($!)
wait_http "http://127.0.0.1:$METRICS_PORT/readyz"

cat >"$WORK/post.lua" <<'EOF'
wrk.method = "POST"
wrk.body = '{"features": {"age": 41, "region": "north", "vip": true}}'
wrk.headers["Content-Type"] = "application/json"
EOF

# Runs wrk; prints "requests_per_s p50_ms p99_ms".
bench() {
    local url=$1 script=${2:-}
    local args=(-t "$THREADS" -c "$CONNECTIONS" -d "$DURATION" --latency)
    [ -n "$script" ] && args+=(-s "$script")
    wrk "${args[@]}" "$url" | awk '
        function ms(v) {
            if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
            if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
            if (v ~ /s$/)  return substr(v, 1, length(v) - 1) * 1000
            return v
        }
        /^ +50%/ { p50 = ms($2) }
        /^ +99%/ { p99 = ms($2) }
        /^Requests\/sec:/ { rps = $2 }
        /Non-2xx/ { bad = $NF }
        END { if (bad) print "warning: " bad " non-2xx answers" > "/dev/stderr"; printf "%s %s %s\n", rps, p50, p99 }'
}

echo "wrk: $THREADS thread(s), $CONNECTIONS connections, $DURATION per run; upstream nginx (1 worker)"
printf '%-40s %12s %10s %10s\n' "run" "req/s" "p50 ms" "p99 ms"
report() {
    local name=$1 direct=$2 proxied=$3 peer=$4
    read -r d_rps d_p50 d_p99 <<<"$direct"
    read -r p_rps p_p50 p_p99 <<<"$proxied"
    read -r n_rps n_p50 n_p99 <<<"$peer"
    printf '%-40s %12.0f %10.3f %10.3f\n' "$name: direct" "$d_rps" "$d_p50" "$d_p99"
    printf '%-40s %12.0f %10.3f %10.3f\n' "$name: through anchorwatch proxy" "$p_rps" "$p_p50" "$p_p99"
    printf '%-40s %12.0f %10.3f %10.3f\n' "$name: through nginx (peer)" "$n_rps" "$n_p50" "$n_p99"
    awk -v dr="$d_rps" -v pr="$p_rps" -v nr="$n_rps" -v d50="$d_p50" -v p50="$p_p50" -v n50="$n_p50" \
        -v d99="$d_p99" -v p99="$p_p99" -v n99="$n_p99" -v n="$name" 'BEGIN {
        ratio = pr / dr; over = p99 - d99
        printf "%-40s throughput %.1f%% of direct, p50 +%.3f ms, p99 +%.3f ms  [%s]\n", n ": anchorwatch overhead", ratio * 100, p50 - d50, over,
            (ratio >= 0.9 && over < 1.0) ? "goal met" : "goal missed (>= 90% and < 1 ms)"
        printf "%-40s throughput %.1f%% of direct, p50 +%.3f ms, p99 +%.3f ms; anchorwatch/nginx throughput %.2f\n", n ": nginx overhead", nr / dr * 100, n50 - d50, n99 - d99, pr / nr
    }'
}

bench "http://127.0.0.1:$UP_PORT/ping" >/dev/null # warm-up
direct=$(bench "http://127.0.0.1:$UP_PORT/ping")
proxied=$(bench "http://127.0.0.1:$PROXY_PORT/ping")
peer=$(bench "http://127.0.0.1:$PEER_PORT/ping")
report "GET /ping (forwarded only)" "$direct" "$proxied" "$peer"

direct=$(bench "http://127.0.0.1:$UP_PORT/predict" "$WORK/post.lua")
proxied=$(bench "http://127.0.0.1:$PROXY_PORT/predict" "$WORK/post.lua")
peer=$(bench "http://127.0.0.1:$PEER_PORT/predict" "$WORK/post.lua")
report "POST /predict (captured)" "$direct" "$proxied" "$peer"

if [ -n "${RATE_BIN:-}" ]; then
    echo
    echo "fixed rate: open loop, $CONNECTIONS connections, ${RATE_SECONDS:-10} s per run; latency from when each request was due"
    printf '%-40s %8s %12s %10s %10s %10s\n' "run" "rate" "achieved/s" "p50 ms" "p99 ms" "p99.9 ms"
    echo '{"features": {"age": 41, "region": "north", "vip": true}}' >"$WORK/body.json"
    for rate in ${RATES:-5000 20000}; do
        for route in "GET /ping" "POST /predict"; do
            path=${route#* }
            body=()
            [ "$path" = /predict ] && body=("$WORK/body.json")
            for target in "direct:$UP_PORT" "anchorwatch proxy:$PROXY_PORT" "nginx (peer):$PEER_PORT"; do
                read -r got p50 p99 p999 errors < <("$RATE_BIN" "http://127.0.0.1:${target##*:}$path" "$rate" \
                    "${RATE_SECONDS:-10}" "$CONNECTIONS" "${body[@]}")
                [ "$errors" = 0 ] || echo "warning: $errors failed requests" >&2
                printf '%-40s %8s %12s %10s %10s %10s\n' "$route: ${target%:*}" "$rate" "$got" "$p50" "$p99" "$p999"
                if [ "${target%:*}" = direct ]; then
                    direct_p99=$p99
                elif [ "${target%:*}" = "anchorwatch proxy" ]; then
                    awk -v d="$direct_p99" -v p="$p99" -v r="$rate" -v g="$got" -v n="$route" 'BEGIN {
                        printf "%-40s %8s achieved %.1f%% of the rate, p99 +%.3f ms  [%s]\n", n ": anchorwatch overhead", r, g / r * 100, p - d,
                            (g / r >= 0.9 && p - d < 1.0) ? "goal met" : "goal missed (>= 90% and < 1 ms)" }'
                fi
            done
        done
    done
fi

metrics=$(curl -fsS "http://127.0.0.1:$METRICS_PORT/metrics")
rows=$(awk '/^anchorwatch_capture_rows_total / { print $2 }' <<<"$metrics")
dropped=$(awk '/^anchorwatch_capture_dropped_total/ && $2 > 0 { printf "%s%s=%s", sep, $1, $2; sep=", " }' <<<"$metrics")
echo "captured rows stored: ${rows:-0}; dropped: ${dropped:-none}"
