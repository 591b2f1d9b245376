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

. "$(dirname "$0")/apt-install-quietly.sh"
apt_install_quietly install-test-deps prometheus

# Whatever an init system may have started anyway is not ours to keep running: the tests start
# their own Prometheus on a free loopback port with temporary storage.
if command -v service >/dev/null 2>&1; then
    $as_root service prometheus stop >/dev/null 2>&1 || true
fi

command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || {
    echo "install-test-deps: prometheus/promtool still missing after apt-get install" >&2
    exit 1
}
