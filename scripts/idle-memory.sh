#!/usr/bin/env bash
# Memory per idle registered subscriber: starts the release crnpd on a fresh data directory,
# registers N clients (each for one r_state type, 50 distinct resource names, from many
# 127.0.x.y source addresses), and prints crnpd's resident memory before and after, per client.
# Usage: scripts/idle-memory.sh [N]   (default 20000; needs `cargo build --release` and python3)
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-20000}
data=$(mktemp -d)
out=$(mktemp)
target/release/crnpd --listen 127.0.0.1:0 --http 127.0.0.1:0 --data-dir "$data" >"$out" 2>/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data" "$out"' EXIT
for _ in $(seq 100); do grep -q ready "$out" && break; sleep 0.1; done
listen=$(sed -n 's/.*listen=\([^ ]*\).*/\1/p' "$out")
rss() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }
before=$(rss)
python3 - "$listen" "$count" <<'EOF'
import concurrent.futures, socket, sys
host, port = sys.argv[1].rsplit(':', 1)
count = int(sys.argv[2])
def register(i):
    s = socket.socket()
    a = 256 + i  # 127.0.1.0 on: a distinct source address per client, up to 16 million
    s.bind((f'127.{a >> 16 & 255}.{a >> 8 & 255}.{a & 255}', 0))
    s.connect((host, int(port)))
    s.sendall(f'<SC_CALLBACK_REG VERSION="1.0" PORT="{7000 + i % 50000}" REG_TYPE="ADD_CLIENT"><SC_EVENT_REG CLASS="EC_Cluster" SUBCLASS="ESC_cluster_r_state"><NVPAIR><NAME>r_name</NAME><VALUE>res-{i % 50}</VALUE></NVPAIR></SC_EVENT_REG></SC_CALLBACK_REG>'.encode())
    reply = b''
    while chunk := s.recv(4096):
        reply += chunk
    s.close()
    return b'"OK"' in reply
with concurrent.futures.ThreadPoolExecutor(64) as pool:
    ok = sum(pool.map(register, range(count)))
if ok != count:
    sys.exit(f'only {ok} of {count} registrations got OK')
EOF
after=$(rss)
echo "clients=$count rss_before_kib=$before rss_after_kib=$after bytes_per_client=$(( (after - before) * 1024 / count ))"
