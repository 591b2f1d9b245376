#!/bin/sh
# Installs the Debian packages tests/package.rs needs beyond what a Rust machine has, idempotently
# and quietly (as root, or with sudo available), on Debian 12 or a derivative:
# - systemd: systemd-analyze, to verify the packaged unit (only the package: it does not become
#   the init system, and no service is started: policy-rc.d denies it for the install);
# - man-db: man, which systemd-analyze verify uses to check the unit's Documentation= pages;
# - util-linux (setpriv, to run crnpd as its service user), adduser (the package's postinst),
#   binutils (objcopy, for cargo-deb's separate debug symbols).
# cargo-deb itself is a cargo install (scripts/install-test-deps).
set -eu

missing=""
need() { # need COMMAND PACKAGE
    command -v "$1" >/dev/null 2>&1 || missing="$missing $2"
}
need systemd-analyze systemd
need man man-db
need setpriv util-linux
need adduser adduser
need objcopy binutils
[ -n "$missing" ] || exit 0

if [ "$(id -u)" -eq 0 ]; then
    as_root=""
elif command -v sudo >/dev/null 2>&1; then
    as_root="sudo"
else
    echo "install-package-deps: run as root (or install sudo) to apt-get install$missing" >&2
    exit 1
fi

policy=/usr/sbin/policy-rc.d
made_policy=""
if [ ! -e "$policy" ]; then
    # 101: "action forbidden by policy"; invoke-rc.d then starts nothing.
    printf '#!/bin/sh\nexit 101\n' | $as_root tee "$policy" >/dev/null
    $as_root chmod 755 "$policy"
    made_policy=1
fi
log=$(mktemp)
cleanup() {
    [ -z "$made_policy" ] || $as_root rm -f "$policy"
    rm -f "$log"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

run_quietly() {
    if ! "$@" >>"$log" 2>&1; then
        cat "$log" >&2
        echo "install-package-deps: failed: $*" >&2
        exit 1
    fi
}
echo "install-package-deps: installing$missing"
run_quietly $as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
# shellcheck disable=SC2086
run_quietly $as_root env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 \
    apt-get install -y -qq --no-install-recommends $missing

for tool in systemd-analyze man setpriv adduser objcopy; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "install-package-deps: $tool still missing after apt-get install" >&2
        exit 1
    }
done
