#!/usr/bin/env python3
"""Round-trip time of one-type ADD_EVENTS as a client's type count grows, against a crnpd binary."""
import socket, subprocess, sys, tempfile, time, statistics, re
binary, total = sys.argv[1], int(sys.argv[2])
data = tempfile.mkdtemp()
p = subprocess.Popen([binary, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--data-dir", data,
                      "--cores", "2"] + sys.argv[3:], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
line = p.stdout.readline()
host, port = re.search(r"listen=([\d.]+):(\d+)", line).groups()
def reg(form, types):
    body = "".join(f'<SC_EVENT_REG CLASS="{t}"/>' for t in types)
    msg = f'<?xml version="1.0" encoding="UTF-8"?><SC_CALLBACK_REG VERSION="1.0" PORT="7000" REG_TYPE="{form}">{body}</SC_CALLBACK_REG>'
    s = socket.create_connection((host, int(port)), timeout=30)
    t0 = time.perf_counter(); s.sendall(msg.encode()); reply = b""
    while b"</SC_REPLY>" not in reply:
        chunk = s.recv(4096)
        if not chunk: break
        reply += chunk
    dt = time.perf_counter() - t0; s.close()
    return dt, re.search(rb'STATUS_CODE="(\w+)"', reply).group(1).decode()
reg("ADD_CLIENT", ["EC_T0"])
times = []
for i in range(1, total):
    dt, status = reg("ADD_EVENTS", [f"EC_T{i}"])
    times.append(dt)
    if status != "OK":
        print(f"type {i+1}: {status}"); break
p.terminate(); p.wait()
first, last = times[:50], times[-50:]
print(f"{binary}: median ADD_EVENTS round trip holding 1-50 types {statistics.median(first)*1e3:.2f} ms, "
      f"holding {len(times)-49}-{len(times)} types {statistics.median(last)*1e3:.2f} ms")
