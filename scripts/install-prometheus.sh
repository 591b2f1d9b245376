#!/bin/sh
# Installs what the test suite needs beyond cargo: Prometheus and promtool (Debian's
# `prometheus` package), for tests/prometheus.rs. Idempotent and quiet; run as root (or with
# sudo available) on Debian 12 or a derivative. Safe without systemd: the package's attempt to
# start its service is denied through policy-rc.d for the duration of the install, so nothing
# is left running and the install does not fail on a machine without an init system.
set -eu

if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    as_root=""
elif command -v sudo >/dev/null 2>&1; then
    as_root="sudo"
else
    echo "install-prometheus: run as root (or install sudo) to apt-get install prometheus" >&2
    exit 1
fi

policy=/usr/sbin/policy-rc.d
made_policy=""
if [ ! -e "$policy" ]; then
    # 101: "action forbidden by policy"; invoke-rc.d then skips starting the service.
    printf '#!/bin/sh\nexit 101\n' | $as_root tee "$policy" >/dev/null
    $as_root chmod 755 "$policy"
    made_policy=1
fi
log=""
cleanup() {
    if [ -n "$made_policy" ]; then
        $as_root rm -f "$policy"
    fi
    if [ -n "$log" ]; then
        rm -f "$log"
    fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

log=$(mktemp)
run_quietly() {
    if ! "$@" >>"$log" 2>&1; then
        cat "$log" >&2
        echo "install-test-deps: failed: $*" >&2
        exit 1
    fi
}
run_quietly $as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
run_quietly $as_root env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 \
    apt-get install -y -qq --no-install-recommends prometheus

# Whatever an init system may have started anyway is not ours to keep running: the tests start
# their own Prometheus on a free loopback port with temporary storage.
if command -v service >/dev/null 2>&1; then
    $as_root service prometheus stop >/dev/null 2>&1 || true
fi

command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || {
    echo "install-test-deps: prometheus/promtool still missing after apt-get install" >&2
    exit 1
}
