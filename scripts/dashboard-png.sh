#!/usr/bin/env bash
# Makes docs/img/dashboard.png from a real load run: starts a release crnpd and a real
# Prometheus (1 s scrapes, temporary storage) on loopback, drives crnpd with crnp-load in a few
# phases (steady load; dead subscribers that are retried then removed and operator DELETEs,
# under load; a burst that builds queues), then renders every panel of
# docs/grafana-dashboard.json from Prometheus's range-query API with the dashboard_png example.
#
# Needs prometheus (scripts/install-prometheus.sh). Only 127.0.0.0/8 is used; everything it
# starts is stopped on exit. Usage: scripts/dashboard-png.sh [OUT.png]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/img/dashboard.png}
target=${CARGO_TARGET_DIR:-target}
command -v prometheus >/dev/null || { echo "prometheus is missing: run scripts/install-test-deps (or scripts/install-prometheus.sh)" >&2; exit 2; }

cargo build --quiet --release --bin crnpd --bin crnp-load --example dashboard_png
crnpd_bin=$target/release/crnpd
load_bin=$target/release/crnp-load
render_bin=$target/release/examples/dashboard_png

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    local port
    for _ in $(seq 1 100); do
        port=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    echo "no free port found" >&2
    exit 1
}

# One HTTP request on loopback with bash's /dev/tcp; prints the status line.
http() { # METHOD HOST:PORT PATH
    local host=${2%:*} port=${2##*:}
    exec 3<>"/dev/tcp/$host/$port"
    printf '%s %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$1" "$3" "$2" >&3
    head -n1 <&3
    exec 3<&-
}

# One CRNP registration from 127.0.0.1; prints the reply.
register() { # LISTEN FORM PORT TYPES
    local host=${1%:*} port=${1##*:}
    exec 4<>"/dev/tcp/$host/$port"
    printf '<?xml version="1.0"?><SC_CALLBACK_REG VERSION="1.0" PORT="%s" REG_TYPE="%s">%s</SC_CALLBACK_REG>' "$3" "$2" "$4" >&4
    timeout 10 cat <&4 || true
    exec 4<&-
    echo
}

"$crnpd_bin" --listen 127.0.0.1:0 --http 127.0.0.1:0 --cores 2 --data-dir "$work/data" \
    --allow-hosts 127.0.0.0/8 --client-retry-count 4 --client-retry-interval 8 --client-timeout 2 \
    >"$work/crnpd.out" 2>"$work/crnpd.log" &
pids+=($!)
crnpd_pid=$!
for _ in $(seq 1 300); do grep -q "crnpd ready" "$work/crnpd.out" && break; sleep 0.1; done
listen=$(sed -n 's/.*listen=\([^ ]*\).*/\1/p' "$work/crnpd.out")
http_addr=$(sed -n 's/.*http=\([^ ]*\).*/\1/p' "$work/crnpd.out")
[ -n "$http_addr" ] || { cat "$work/crnpd.log" >&2; exit 1; }

prom_port=$(free_port)
cat >"$work/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: crnpd
    static_configs:
      - targets: ['$http_addr']
YAML
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
    --web.listen-address="127.0.0.1:$prom_port" --log.level=warn 2>"$work/prometheus.log" &
pids+=($!)
for _ in $(seq 1 300); do
    (http GET "127.0.0.1:$prom_port" /-/ready 2>/dev/null | grep -q 200) && break
    sleep 0.1
done

start=$(date +%s)
echo "crnpd listen=$listen http=$http_addr; prometheus 127.0.0.1:$prom_port; load run starts"
sleep 10

load() {
    "$load_bin" --mode crnpd --server "$listen" --http "$http_addr" --crnpd-pid "$crnpd_pid" "$@" \
        >>"$work/load.out" 2>&1 || { echo "crnp-load failed:" >&2; tail -40 "$work/load.out" >&2; exit 1; }
}

echo "phase 1: 200 subscribers, 600 events at 20/s (4000 deliveries/s)"
load --subscribers 200 --events 600 --rate 20

echo "phase 2: 30 dead subscribers (retried, then removed as unreachable), 30 operator DELETEs"
for i in $(seq 1 30); do
    dead=$((7700 + i)) # nobody listens there (checked): every delivery is refused
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$dead") 2>/dev/null; then
        register "$listen" ADD_CLIENT "$dead" '<SC_EVENT_REG CLASS="EC_crnp_load"/>' >/dev/null
    fi
    register "$listen" ADD_CLIENT $((7900 + i)) '<SC_EVENT_REG CLASS="EC_Other"/>' >/dev/null
    register "$listen" ADD_EVENTS $((7800 + i)) '<SC_EVENT_REG CLASS="EC_Other"/>' >/dev/null # FAIL
done
for i in $(seq 1 30); do http DELETE "$http_addr" "/v1/clients/127.0.0.1:$((7900 + i))" >/dev/null; done
load --subscribers 100 --events 300 --rate 20

echo "phase 3: a burst, 300 subscribers x 500 events as fast as crnpd accepts them"
load --subscribers 300 --events 500 --rate 0 --batch 20
sleep 15
end=$(date +%s)

grep -A1 "^subs" "$work/load.out" || true
"$render_bin" --prometheus "127.0.0.1:$prom_port" --start "$start" --end "$end" --step 1 \
    --rate-interval 5s --out "$out" \
    --subtitle "$(date -u +%Y-%m-%d) load run on $(nproc) cores: crnpd --release --cores 2, crnp-load phases: 200 subs x 20 ev/s; 30 dead subscribers + 30 DELETEs, 100 subs x 20 ev/s; burst of 300 subs x 500 events. Prometheus scrapes every 1 s."
