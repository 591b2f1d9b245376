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

. "$(dirname "$0")/apt-install-quietly.sh"
echo "install-package-deps: installing$missing"
# shellcheck disable=SC2086
apt_install_quietly install-package-deps $missing

for tool in systemd-analyze man setpriv adduser objcopy; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "install-package-deps: $tool still missing after apt-get install" >&2
        exit 1
    }
done
