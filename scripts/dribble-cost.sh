#!/usr/bin/env bash
# crnpd's CPU for one registration that arrives a byte at a time: starts the release crnpd
# (one core) on a fresh data directory, sends the first N bytes of a large ADD_CLIENT one byte
# per segment (TCP_NODELAY, 0.2 ms apart), and prints the CPU crnpd spent meanwhile.
# Usage: scripts/dribble-cost.sh [N]   (default 20000; needs `cargo build --release` and python3)
set -euo pipefail
cd "$(dirname "$0")/.."
bytes=${1:-20000}
data=$(mktemp -d)
out=$(mktemp)
target/release/crnpd --listen 127.0.0.1:0 --http 127.0.0.1:0 --cores 1 --data-dir "$data" >"$out" 2>/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data" "$out"' EXIT
for _ in $(seq 100); do grep -q ready "$out" && break; sleep 0.1; done
listen=$(sed -n 's/.*listen=\([^ ]*\).*/\1/p' "$out")
python3 - "$listen" "$pid" "$bytes" <<'EOF'
import os, socket, sys, time
host, port = sys.argv[1].rsplit(':', 1)
pid, count = sys.argv[2], int(sys.argv[3])
def cpu_seconds():
    fields = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')
body = ('<SC_CALLBACK_REG VERSION="1.0" PORT="7000" REG_TYPE="ADD_CLIENT">'
        + '<SC_EVENT_REG CLASS="EC_Cluster" SUBCLASS="ESC_cluster_membership"/>' * 1000).encode()
count = min(count, len(body))
s = socket.create_connection((host, int(port)))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
before, started = cpu_seconds(), time.time()
for i in range(count):
    s.send(body[i:i + 1])
    time.sleep(0.0002)
print(f'bytes={count} seconds={time.time() - started:.1f} crnpd_cpu_seconds={cpu_seconds() - before:.2f}')
s.close()
EOF
