# Sourced by the install scripts: `apt_install_quietly NAME PACKAGE...` installs Debian packages
# as root (or with sudo), quietly, with service starts denied for the duration of the install
# (policy-rc.d answers 101, "action forbidden by policy"), so that nothing is left running and
# the install does not fail on a machine without an init system. On failure it prints apt's
# output and exits 1; NAME prefixes its messages.
apt_install_quietly() {
    name=$1
    shift
    if [ "$(id -u)" -eq 0 ]; then
        as_root=""
    elif command -v sudo >/dev/null 2>&1; then
        as_root="sudo"
    else
        echo "$name: run as root (or install sudo) to apt-get install $*" >&2
        exit 1
    fi
    policy=/usr/sbin/policy-rc.d
    made_policy=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | $as_root tee "$policy" >/dev/null
        $as_root chmod 755 "$policy"
        made_policy=1
    fi
    log=$(mktemp)
    trap apt_install_cleanup EXIT
    trap 'exit 1' INT TERM
    apt_run_quietly "$name" $as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_run_quietly "$name" $as_root env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 \
        apt-get install -y -qq --no-install-recommends "$@"
    apt_install_cleanup
    trap - EXIT INT TERM
}

apt_install_cleanup() {
    [ -z "$made_policy" ] || $as_root rm -f "$policy"
    made_policy=""
    [ -z "$log" ] || rm -f "$log"
    log=""
}

apt_run_quietly() {
    name=$1
    shift
    if ! "$@" >>"$log" 2>&1; then
        cat "$log" >&2
        echo "$name: failed: $*" >&2
        exit 1
    fi
}
