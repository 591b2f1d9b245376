#!/bin/sh
# Install what tests/pacemaker/e2e.sh needs on a Debian 12 machine (as root).
# Idempotent and quiet: does nothing when everything is already there.
#
# - Debian packages: corosync, pacemaker and its CLI, resource-agents (ocf-tester,
#   Filesystem, IPaddr2), xmllint (ocf-tester's meta-data check), modprobe (the
#   Filesystem agent wants it), ip and ss, jq (the test reads the subscribers'
#   JSON), mountpoint and flock.
# - pacemaker-remoted, for the remote node the test starts in a network
#   namespace. Debian's pacemaker-remote package conflicts with pacemaker
#   (installing it removes pacemaker), so its binary is only unpacked, into
#   $CRNP_E2E_CACHE (default /var/cache/crnp-e2e), never installed.
set -eu

PACKAGES="corosync pacemaker pacemaker-cli-utils resource-agents libxml2-utils kmod iproute2 procps jq util-linux"
CACHE=${CRNP_E2E_CACHE:-/var/cache/crnp-e2e}
REMOTED="$CACHE/pacemaker-remote/usr/sbin/pacemaker-remoted"
POLICY=/usr/sbin/policy-rc.d

if [ "$(id -u)" != 0 ]; then
	echo "install-test-deps.sh: must run as root" >&2
	exit 1
fi

created_policy=no
tmp=
cleanup() {
	[ $created_policy = no ] || rm -f "$POLICY"
	[ -z "$tmp" ] || rm -rf "$tmp"
}
trap cleanup EXIT

missing=
for p in $PACKAGES; do
	dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done

updated=no
if [ -n "$missing" ]; then
	echo "install-test-deps.sh: installing$missing"
	# Keep the packages' scripts from starting corosync and pacemaker: the test
	# starts its own, and refuses to run next to a running cluster.
	if [ ! -e "$POLICY" ]; then
		printf '#!/bin/sh\nexit 101\n' >"$POLICY"
		chmod 0755 "$POLICY"
		created_policy=yes
	fi
	apt-get update -qq
	updated=yes
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

if [ ! -x "$REMOTED" ]; then
	echo "install-test-deps.sh: unpacking pacemaker-remoted into $CACHE"
	[ $updated = yes ] || apt-get update -qq
	tmp=$(mktemp -d)
	# The version of the installed pacemaker, so that both speak the same protocol.
	version=$(dpkg-query -W -f '${Version}' pacemaker)
	(cd "$tmp" && { apt-get download -qq "pacemaker-remote=$version" >/dev/null 2>&1 ||
		apt-get download -qq pacemaker-remote >/dev/null; })
	mkdir -p "$CACHE"
	rm -rf "$CACHE/pacemaker-remote"
	dpkg-deb -x "$tmp"/pacemaker-remote_*.deb "$CACHE/pacemaker-remote"
	test -x "$REMOTED"
fi
