#!/bin/bash
#
# End-to-end test: crnpd under a real Pacemaker cluster.
#
# What it guards: that Pacemaker can run crnpd as a failover resource through
# tools/pacemaker/crnpd.ocf (next to a floating IP and a filesystem, with the
# sample configuration docs/pacemaker/crnpd-cib.xml.in), and that Pacemaker's
# own events reach CRNP subscribers through tools/pacemaker/crnp-alert:
#   - ocf-tester passes on the agent;
#   - stopping and starting a group gives ESC_cluster_r_state and
#     ESC_cluster_rg_state events in order;
#   - a remote node (pacemaker-remoted in a network namespace) leaving and
#     joining gives ESC_cluster_membership events;
#   - events raised while crnpd is stopped are delivered, in order, once it is
#     back (the alert agent's spool);
#   - a crnpd killed with SIGKILL is noticed by the monitor and restarted.
#
# Needs root, a machine with no cluster running, and what
# tools/pacemaker/install-test-deps.sh installs. Builds nothing: takes crnpd and
# crnp from $CRNPD and $CRNP (default target/debug/). Uses loopback addresses
# and a 169.254.77.0/30 veth pair into the namespace. Every daemon it starts is
# stopped, the namespace removed and the files it replaced restored on exit,
# also on failure. Prints "N passed, M failed" last; exits 1 on any failure.
#
# Usage: tests/pacemaker/e2e.sh          (about 80 s)
# Environment: CRNPD, CRNP, PCMK_REMOTED, CRNP_E2E_IP (127.0.0.77),
#   CRNP_E2E_PORT (19444), CRNP_E2E_HTTP_PORT (19445), CRNP_E2E_SUB_PORT (19461..19463),
#   CRNP_E2E_KEEP=1 keeps the work directory.

# Functions called through wait_for, check and the traps look unreachable to shellcheck.
# shellcheck disable=SC2317
set -u
export LC_ALL=C

REPO=$(cd "$(dirname "$0")/../.." && pwd)
CRNPD=${CRNPD:-$REPO/target/debug/crnpd}
CRNP=${CRNP:-$REPO/target/debug/crnp}
REMOTED=${PCMK_REMOTED:-${CRNP_E2E_CACHE:-/var/cache/crnp-e2e}/pacemaker-remote/usr/sbin/pacemaker-remoted}
IP=${CRNP_E2E_IP:-127.0.0.77}
PORT=${CRNP_E2E_PORT:-19444}
HTTP_PORT=${CRNP_E2E_HTTP_PORT:-19445}
SUB_PORT=${CRNP_E2E_SUB_PORT:-19461}
NODE=$(uname -n)
NS=crnp-e2e-rn1
VETH_HOST=crnpe2e-h
VETH_NS=crnpe2e-r
NS_HOST_ADDR=169.254.77.1
NS_ADDR=169.254.77.2
RNODE=rnode1
OCF_DIR=/usr/lib/ocf/resource.d/crnp
CIB_DIR=/var/lib/pacemaker/cib
COROSYNC_CONF=/etc/corosync/corosync.conf
AUTHKEY=/etc/pacemaker/authkey
CRNPD_PIDFILE=/run/resource-agents/crnpd-crnpd.pid # the agent's default for resource crnpd

PASS=0
FAIL=0
WORK=
COROSYNC_PID=
PACEMAKERD_PID=
REMOTED_PID=
SUB_PIDS=()
CREATED_OCF_DIR=no
CREATED_AUTHKEY=no
BACKED_UP=no

say() { printf '%s %s\n' "$(date +%T)" "$*"; }
ok() {
	PASS=$((PASS + 1))
	say "ok   - $*"
}
not_ok() {
	FAIL=$((FAIL + 1))
	say "FAIL - $*"
}
check() { # description command...
	local desc=$1
	shift
	if "$@"; then ok "$desc"; else not_ok "$desc"; fi
}

# Poll "$@" every 0.2 s until it succeeds or $1 seconds have passed.
wait_for() {
	local secs=$1 deadline
	shift
	deadline=$((SECONDS + secs))
	while :; do
		"$@" && return 0
		[ $SECONDS -ge $deadline ] && return 1
		sleep 0.2
	done
}

# Wait for a pid to exit, at most $2 seconds.
wait_exit() {
	local pid=$1 secs=$2 deadline
	deadline=$((SECONDS + secs))
	while kill -0 "$pid" 2>/dev/null; do
		[ $SECONDS -ge $deadline ] && return 1
		sleep 0.2
	done
	wait "$pid" 2>/dev/null
	return 0
}

stop_pid() { # pid seconds-before-KILL
	local pid=$1
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null
	wait_exit "$pid" "$2" && return 0
	say "cleanup: pid $pid ignored SIGTERM for $2 s, killing it"
	kill -KILL "$pid" 2>/dev/null
	wait_exit "$pid" 5
}

# ------------------------------------------------------------------ cleanup

show_logs() {
	local f
	for f in "$WORK"/pacemaker.log "$WORK"/crnpd.log "$WORK"/alert.log "$WORK"/sub-*.out "$WORK"/sub-*.err "$WORK"/remoted.log; do
		[ -s "$f" ] || continue
		echo "----- last lines of $f"
		case "$f" in
		*pacemaker.log) grep -E "error|warning|crnp|notice: (Result|Initiating)" "$f" | tail -n 40 ;;
		*) tail -n 25 "$f" ;;
		esac
	done
	echo "----- crm_mon"
	timeout 5 crm_mon -1 -r 2>&1 | tail -n 20
}

cleanup() {
	local rc=$? pid
	trap - EXIT INT TERM
	set +e
	[ -n "$WORK" ] || exit $rc
	if [ $FAIL -gt 0 ] || [ $rc -ne 0 ]; then show_logs; fi
	say "cleanup"
	for pid in "${SUB_PIDS[@]}"; do stop_pid "$pid" 5; done
	if [ -n "$PACEMAKERD_PID" ] && kill -0 "$PACEMAKERD_PID" 2>/dev/null; then
		# pacemakerd stops the resources (crnpd, the IP, the filesystem) first.
		kill -TERM "$PACEMAKERD_PID"
		if ! wait_exit "$PACEMAKERD_PID" 90; then
			say "cleanup: pacemakerd did not stop in 90 s, killing it and its daemons"
			for pid in $(pgrep -P "$PACEMAKERD_PID"); do kill -KILL "$pid"; done
			kill -KILL "$PACEMAKERD_PID"
			wait_exit "$PACEMAKERD_PID" 5
		fi
	fi
	if [ -n "$COROSYNC_PID" ] && kill -0 "$COROSYNC_PID" 2>/dev/null; then
		corosync-cfgtool -H >/dev/null 2>&1
		wait_exit "$COROSYNC_PID" 20 || stop_pid "$COROSYNC_PID" 5
	fi
	stop_pid "$REMOTED_PID" 10
	ip netns del "$NS" 2>/dev/null
	ip link del "$VETH_HOST" 2>/dev/null

	# What a killed Pacemaker may have left behind.
	for pid in $(cat "$CRNPD_PIDFILE" "$WORK"/run/*.pid 2>/dev/null); do
		[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$(readlink -f "$CRNPD")" ] && stop_pid "$pid" 10
	done
	OCF_ROOT=/usr/lib/ocf OCF_RESOURCE_INSTANCE=crnpd_ocft OCF_RESKEY_binary="$CRNPD" \
		OCF_RESKEY_data_dir="$WORK/ocft-data" OCF_RESKEY_pidfile="$WORK/run/ocft.pid" \
		"$WORK/crnpd.ocf" stop >/dev/null 2>&1
	mountpoint -q "$WORK/shared" && umount "$WORK/shared"
	ip addr del "$IP/32" dev lo 2>/dev/null
	# Alert drainers still retrying (their path is unique to this run).
	for pid in $(pgrep -u hacluster -f "$WORK/crnp-alert" 2>/dev/null); do stop_pid "$pid" 5; done

	if [ $BACKED_UP = yes ]; then
		rm -f "$CIB_DIR"/*
		cp -a "$WORK/backup/cib/." "$CIB_DIR/" 2>/dev/null
		if [ -f "$WORK/backup/corosync.conf" ]; then
			cp -a "$WORK/backup/corosync.conf" "$COROSYNC_CONF"
		else
			rm -f "$COROSYNC_CONF"
		fi
		if [ -f "$WORK/backup/crnpd.ocf" ]; then
			cp -a "$WORK/backup/crnpd.ocf" "$OCF_DIR/crnpd"
		else
			rm -f "$OCF_DIR/crnpd"
		fi
	fi
	[ $CREATED_OCF_DIR = yes ] && rmdir "$OCF_DIR" 2>/dev/null
	[ $CREATED_AUTHKEY = yes ] && rm -f "$AUTHKEY"

	if [ $FAIL -gt 0 ] || [ $rc -ne 0 ] || [ "${CRNP_E2E_KEEP:-0}" = 1 ]; then
		say "work directory kept: $WORK"
	else
		rm -rf "$WORK"
	fi
	[ $rc -ne 0 ] && [ $FAIL -eq 0 ] && not_ok "the test stopped early (exit status $rc)"
	echo "$PASS passed, $FAIL failed"
	[ $FAIL -eq 0 ] || exit 1
	exit 0
}

abort() {
	not_ok "$*"
	exit 1
}

# ------------------------------------------------------------------ helpers

crm_has() { timeout 10 crm_mon -1 -r 2>/dev/null | grep -Eq "$1"; }
started() { crm_has "^ *\* $1[[:space:]].*Started $NODE"; }
stopped() { crm_has "^ *\* $1[[:space:]].*Stopped"; }
set_role() { crm_resource -r "$1" --meta -p target-role -v "$2" >/dev/null; }

# The JSON lines a subscriber printed after line $2, reduced by jq filter $3.
after() { tail -n "+$(($2 + 1))" "$1" 2>/dev/null | jq -r "$3" 2>/dev/null; }
lines() { wc -l <"$1" 2>/dev/null || echo 0; }

NV='(.nvpairs | map({key: .name, value: ([.value] | flatten)}) | from_entries)'
FIRST_STATE="$NV.state_list[0]"
RNODE_STATE="$NV as \$m | (\$m.node_list | index(\"$RNODE\")) as \$i
	| if \$i == null then \"absent\" elif \$m.state_list[\$i] == \"-1\" then \"lost\" else \"member\" end"

# Are the words of $1 a subsequence of stdin's lines? (Duplicates and resync
# events, which CRNP allows, may come in between.)
subsequence() {
	local -a want
	local i=0 w
	read -ra want <<<"$1"
	while IFS= read -r w; do
		[ $i -lt ${#want[@]} ] && [ "$w" = "${want[$i]}" ] && i=$((i + 1))
	done
	[ $i -eq ${#want[@]} ]
}
saw() { after "$1" "$2" "$3" | subsequence "$4"; } # file offset filter words

expect() { # description seconds file offset filter words
	local desc=$1 secs=$2 file=$3 off=$4 filter=$5 words=$6
	if wait_for "$secs" saw "$file" "$off" "$filter" "$words"; then
		ok "$desc"
	else
		not_ok "$desc (wanted: $words; got: $(after "$file" "$off" "$filter" | tr '\n' ' '))"
	fi
}

subscribe() { # name port subclass [nv]
	local name=$1 port=$2 sub=$3
	shift 3
	"$CRNP" subscribe --server "$IP:$PORT" --port "$port" --bind 127.0.0.1 \
		--class EC_Cluster --subclass "$sub" "$@" --json \
		>"$WORK/sub-$name.out" 2>"$WORK/sub-$name.err" &
	SUB_PIDS+=($!)
}

crnpd_pid() { cat "$CRNPD_PIDFILE" 2>/dev/null; }
healthy() { "$CRNP" health --http "$IP:$HTTP_PORT" --timeout 2 >/dev/null 2>&1; }

# ------------------------------------------------------------------ preflight

[ "$(id -u)" = 0 ] || { echo "e2e.sh: must run as root"; echo "0 passed, 1 failed"; exit 1; }
for c in corosync corosync-cfgtool pacemakerd cibadmin crm_mon crm_resource ocf-tester xmllint ip jq flock setsid mountpoint; do
	command -v "$c" >/dev/null || { echo "e2e.sh: $c missing: run tools/pacemaker/install-test-deps.sh"; echo "0 passed, 1 failed"; exit 1; }
done
for f in "$CRNPD" "$CRNP" "$REMOTED"; do
	[ -x "$f" ] || { echo "e2e.sh: $f missing (build with cargo build; pacemaker-remoted: install-test-deps.sh)"; echo "0 passed, 1 failed"; exit 1; }
done
if pgrep -x corosync >/dev/null || pgrep -x pacemakerd >/dev/null; then
	echo "e2e.sh: a corosync or pacemakerd is already running here; refusing to touch it"
	echo "0 passed, 1 failed"
	exit 1
fi

WORK=$(mktemp -d /var/tmp/crnp-e2e.XXXXXX)
trap cleanup EXIT
trap 'exit 130' INT TERM
chmod 755 "$WORK"
mkdir -p "$WORK/backup/cib" "$WORK/run" "$WORK/shared"
say "work directory $WORK"

# The agents, where hacluster and nobody can read them.
install -m 0755 "$REPO/tools/pacemaker/crnpd.ocf" "$WORK/crnpd.ocf"
install -m 0755 "$REPO/tools/pacemaker/crnp-alert" "$WORK/crnp-alert"

# ------------------------------------------------------------------ 1. ocf-tester

if timeout 120 ocf-tester -n crnpd_ocft -o binary="$CRNPD" -o data_dir="$WORK/ocft-data" \
	-o listen="$IP:$((PORT + 20))" -o http="$IP:$((HTTP_PORT + 20))" \
	-o pidfile="$WORK/run/ocft.pid" -o logfile="$WORK/ocft.log" \
	"$WORK/crnpd.ocf" >"$WORK/ocf-tester.out" 2>&1; then
	ok "ocf-tester passes on crnpd.ocf"
else
	cat "$WORK/ocf-tester.out"
	tail -n 20 "$WORK/ocft.log" 2>/dev/null
	not_ok "ocf-tester passes on crnpd.ocf"
fi

# ------------------------------------------------------------------ 2. the cluster

cp -a "$CIB_DIR/." "$WORK/backup/cib/" 2>/dev/null
[ -f "$COROSYNC_CONF" ] && cp -a "$COROSYNC_CONF" "$WORK/backup/corosync.conf"
[ -f "$OCF_DIR/crnpd" ] && cp -a "$OCF_DIR/crnpd" "$WORK/backup/crnpd.ocf"
BACKED_UP=yes

[ -d "$OCF_DIR" ] || { mkdir -p "$OCF_DIR" && CREATED_OCF_DIR=yes; }
install -m 0755 "$REPO/tools/pacemaker/crnpd.ocf" "$OCF_DIR/crnpd"
if [ ! -f "$AUTHKEY" ]; then
	mkdir -p "$(dirname "$AUTHKEY")"
	dd if=/dev/urandom of="$AUTHKEY" bs=4096 count=1 2>/dev/null
	chown hacluster:haclient "$AUTHKEY"
	chmod 0640 "$AUTHKEY"
	CREATED_AUTHKEY=yes
fi

sed -e "s/@CLUSTER_NAME@/crnp-e2e/" -e "s/@NODE_NAME@/$NODE/" -e "s/@NODE_ADDR@/127.0.0.1/" \
	-e "s|^\([[:space:]]*\)logfile: .*|\1logfile: $WORK/corosync.log|" \
	"$REPO/docs/pacemaker/corosync.conf.in" >"$COROSYNC_CONF"

# A CIB with the test's cluster options only: no fencing on one loopback node,
# and a short DC election wait. The crnpd configuration is loaded later, as
# docs/PACEMAKER.md tells an administrator to.
rm -f "$CIB_DIR"/*
cat >"$CIB_DIR/cib.xml" <<EOF
<cib validate-with="pacemaker-3.9" epoch="1" num_updates="0" admin_epoch="0">
  <configuration>
    <crm_config>
      <cluster_property_set id="cib-bootstrap-options">
        <nvpair id="opt-stonith-enabled" name="stonith-enabled" value="false"/>
        <nvpair id="opt-dc-deadtime" name="dc-deadtime" value="2s"/>
      </cluster_property_set>
    </crm_config>
    <nodes/>
    <resources/>
    <constraints/>
  </configuration>
  <status/>
</cib>
EOF
chown hacluster:haclient "$CIB_DIR/cib.xml"
chmod 0600 "$CIB_DIR/cib.xml"

touch "$WORK/pacemaker.log" "$WORK/alert.log"
chown hacluster:haclient "$WORK/pacemaker.log" "$WORK/alert.log"
install -d -o hacluster -g haclient -m 0750 "$WORK/spool"
# The admin token: crnpd (root) and the alert agent (hacluster) read it.
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$WORK/admin-token"
chown root:haclient "$WORK/admin-token"
chmod 0640 "$WORK/admin-token"

mkdir -p /var/log/corosync
corosync -f >"$WORK/corosync.out" 2>&1 &
COROSYNC_PID=$!
wait_for 20 corosync-cfgtool -s >/dev/null 2>&1 || abort "corosync starts"
PCMK_logfile="$WORK/pacemaker.log" setsid /usr/sbin/pacemakerd </dev/null >"$WORK/pacemakerd.out" 2>&1 &
PACEMAKERD_PID=$!
if wait_for 60 crm_has "Current DC: $NODE .*with quorum"; then
	ok "corosync and pacemaker are up, $NODE is the DC"
else
	abort "corosync and pacemaker are up, $NODE is the DC"
fi

# The sample configuration, with a tmpfs as the shared disk and a loopback
# address as the floating IP.
sed -e "s|@FS_DEVICE@|tmpfs|g" -e "s|@FS_TYPE@|tmpfs|g" -e "s|@FS_DIR@|$WORK/shared|g" \
	-e "s|@SERVICE_IP@|$IP|g" -e "s|@SERVICE_CIDR@|32|g" -e "s|@SERVICE_NIC@|lo|g" \
	-e "s|@CRNP_PORT@|$PORT|g" -e "s|@HTTP_PORT@|$HTTP_PORT|g" -e "s|@CRNPD_BINARY@|$CRNPD|g" \
	-e "s|@ALLOW_HOSTS@|LOCAL|g" -e "s|@TOKEN_FILE@|$WORK/admin-token|g" \
	-e "s|@CRNPD_LOG@|$WORK/crnpd.log|g" -e "s|@ALERT_PATH@|$WORK/crnp-alert|g" \
	-e "s|@ALERT_SPOOL@|$WORK/spool|g" -e "s|@ALERT_LOG@|$WORK/alert.log|g" \
	"$REPO/docs/pacemaker/crnpd-cib.xml.in" >"$WORK/crnpd-cib.xml"
if grep -q '@[A-Z_]*@' "$WORK/crnpd-cib.xml"; then
	abort "sample configuration: unfilled placeholders $(grep -o '@[A-Z_]*@' "$WORK/crnpd-cib.xml" | sort -u | tr '\n' ' ')"
fi
# A group of two Dummy resources: the application whose events are watched.
cat >"$WORK/fixtures.xml" <<EOF
<configuration>
  <resources>
    <group id="g_app">
      <primitive id="d1" class="ocf" provider="pacemaker" type="Dummy">
        <operations>
          <op id="d1-monitor" name="monitor" interval="10s"/>
        </operations>
      </primitive>
      <primitive id="d2" class="ocf" provider="pacemaker" type="Dummy"/>
    </group>
  </resources>
  <constraints>
    <rsc_location id="g_app-cluster-nodes-only" rsc="g_app" resource-discovery="never">
      <rule id="g_app-cluster-nodes-only-rule" score="-INFINITY">
        <expression id="g_app-cluster-nodes-only-expr" attribute="#kind" operation="ne" value="cluster"/>
      </rule>
    </rsc_location>
  </constraints>
</configuration>
EOF
if ! cibadmin --modify --xml-file "$WORK/crnpd-cib.xml" >"$WORK/cibadmin.out" 2>&1 ||
	! cibadmin --modify --xml-file "$WORK/fixtures.xml" >>"$WORK/cibadmin.out" 2>&1; then
	cat "$WORK/cibadmin.out"
	abort "the sample configuration loads with cibadmin --modify"
fi

all_started() { started crnp_fs && started crnp_ip && started crnpd && started d1 && started d2; }
if wait_for 90 all_started && healthy; then
	ok "Pacemaker runs crnpd through ocf:crnp:crnpd, with its filesystem and floating IP"
else
	abort "Pacemaker runs crnpd through ocf:crnp:crnpd, with its filesystem and floating IP"
fi
registry_on_fs() { mountpoint -q "$WORK/shared" && [ -n "$(ls -A "$WORK/shared/crnpd" 2>/dev/null)" ]; }
check "crnpd's registry is on the cluster filesystem" registry_on_fs
listens_on_ip() { ip -o addr show dev lo | grep -q " $IP/32 " && ss -ltn | grep -q " $IP:$PORT "; }
check "the floating IP is up and crnpd listens on it" listens_on_ip

# ------------------------------------------------------------------ 3. resource events

subscribe r "$SUB_PORT" ESC_cluster_r_state --nv r_name=d1
subscribe g "$((SUB_PORT + 1))" ESC_cluster_rg_state --nv rg_name=g_app
# On registration crnpd sends the latest event of the type: d1 and g_app are
# online (the alert may have spooled them until crnpd was up).
expect "r_state subscriber registered, gets the latest d1 state (ONLINE)" 40 "$WORK/sub-r.out" 0 "$FIRST_STATE" "ONLINE"
expect "rg_state subscriber registered, gets the latest g_app state (ONLINE)" 40 "$WORK/sub-g.out" 0 "$FIRST_STATE" "ONLINE"
r_event_shape() {
	head -n 1 "$WORK/sub-r.out" | jq -e --arg node "$NODE" '.class == "EC_Cluster" and
		.subclass == "ESC_cluster_r_state" and .vendor == "SUNW" and .publisher == "rgm" and
		('"$NV"' | .r_name == ["d1"] and .node_list == [$node])' >/dev/null
}
check "events carry EC_Cluster, VENDOR SUNW, PUBLISHER rgm, r_name and node_list" r_event_shape

r0=$(lines "$WORK/sub-r.out")
g0=$(lines "$WORK/sub-g.out")
set_role g_app Stopped
wait_for 30 stopped d1 || not_ok "g_app stops"
expect "stopping g_app: r_state d1 OFFLINE" 20 "$WORK/sub-r.out" "$r0" "$FIRST_STATE" "OFFLINE"
expect "stopping g_app: rg_state g_app PENDING_OFFLINE, OFFLINE" 20 "$WORK/sub-g.out" "$g0" "$FIRST_STATE" "PENDING_OFFLINE OFFLINE"

r0=$(lines "$WORK/sub-r.out")
g0=$(lines "$WORK/sub-g.out")
set_role g_app Started
wait_for 30 started d2 || not_ok "g_app starts"
expect "starting g_app: r_state d1 ONLINE" 20 "$WORK/sub-r.out" "$r0" "$FIRST_STATE" "ONLINE"
expect "starting g_app: rg_state g_app PENDING_ONLINE, ONLINE" 20 "$WORK/sub-g.out" "$g0" "$FIRST_STATE" "PENDING_ONLINE ONLINE"

# ------------------------------------------------------------------ 4. membership

ip netns add "$NS" &&
	ip link add "$VETH_HOST" type veth peer name "$VETH_NS" &&
	ip link set "$VETH_NS" netns "$NS" &&
	ip addr add "$NS_HOST_ADDR/30" dev "$VETH_HOST" &&
	ip link set "$VETH_HOST" up &&
	ip netns exec "$NS" ip addr add "$NS_ADDR/30" dev "$VETH_NS" &&
	ip netns exec "$NS" ip link set "$VETH_NS" up &&
	ip netns exec "$NS" ip link set lo up ||
	abort "network namespace $NS with a veth pair"
touch "$WORK/remoted.log"
chown hacluster:haclient "$WORK/remoted.log"
ip netns exec "$NS" env PCMK_logfile="$WORK/remoted.log" setsid "$REMOTED" </dev/null >"$WORK/remoted.out" 2>&1 &
REMOTED_PID=$!
remoted_listens() { ip netns exec "$NS" ss -ltn | grep -q ":3121 "; }
wait_for 20 remoted_listens || abort "pacemaker-remoted listens in $NS"
cibadmin --create -o resources --xml-text "<primitive id=\"$RNODE\" class=\"ocf\" provider=\"pacemaker\" type=\"remote\">
  <instance_attributes id=\"$RNODE-ia\"><nvpair id=\"$RNODE-server\" name=\"server\" value=\"$NS_ADDR\"/></instance_attributes>
  <operations><op id=\"$RNODE-monitor\" name=\"monitor\" interval=\"5s\"/></operations>
</primitive>" || abort "the remote node resource is created"
wait_for 40 crm_has "RemoteOnline: \[ $RNODE \]" || abort "$RNODE joins the cluster"

subscribe m "$((SUB_PORT + 2))" ESC_cluster_membership
expect "membership subscriber registered, gets the latest membership ($RNODE member)" 40 "$WORK/sub-m.out" 0 "$RNODE_STATE" "member"
membership_shape() {
	tail -n 1 "$WORK/sub-m.out" | jq -e --arg node "$NODE" '.subclass == "ESC_cluster_membership" and
		('"$NV"' | (.node_list | index($node)) != null and (.node_list | length) == (.state_list | length)
		and all(.state_list[]; test("^(-1|[0-9]+)$")))' >/dev/null
}
check "membership events list every node with an incarnation (-1: not a member)" membership_shape

m0=$(lines "$WORK/sub-m.out")
set_role "$RNODE" Stopped
wait_for 30 crm_has "RemoteOFFLINE: \[ $RNODE \]" || not_ok "$RNODE leaves"
expect "remote node leaves: membership shows $RNODE lost (-1)" 20 "$WORK/sub-m.out" "$m0" "$RNODE_STATE" "lost"

m0=$(lines "$WORK/sub-m.out")
set_role "$RNODE" Started
wait_for 40 crm_has "RemoteOnline: \[ $RNODE \]" || not_ok "$RNODE joins again"
expect "remote node joins: membership shows $RNODE member again" 20 "$WORK/sub-m.out" "$m0" "$RNODE_STATE" "member"

# ------------------------------------------------------------------ 5. the spool

r0=$(lines "$WORK/sub-r.out")
set_role crnpd Stopped
wait_for 40 stopped crnpd || not_ok "crnpd stops"
set_role g_app Stopped
wait_for 30 stopped d1 || not_ok "g_app stops while crnpd is down"
set_role g_app Started
wait_for 30 started d2 || not_ok "g_app starts while crnpd is down"
spooled() { [ -n "$(ls -A "$WORK/spool/out" 2>/dev/null)" ]; }
check "events raised while crnpd is down wait in the alert spool" wait_for 10 spooled
set_role crnpd Started
wait_for 60 started crnpd || not_ok "crnpd starts again"
expect "after crnpd is back: the spooled d1 OFFLINE, ONLINE arrive, in order" 40 "$WORK/sub-r.out" "$r0" "$FIRST_STATE" "OFFLINE ONLINE"

# ------------------------------------------------------------------ 6. the monitor

old=$(crnpd_pid)
if [ -n "$old" ] && kill -KILL "$old" 2>/dev/null; then
	restarted() { local p; p=$(crnpd_pid); [ -n "$p" ] && [ "$p" != "$old" ] && started crnpd && healthy; }
	check "crnpd killed with SIGKILL: the monitor notices, Pacemaker restarts it" wait_for 60 restarted
else
	not_ok "crnpd killed with SIGKILL: the monitor notices, Pacemaker restarts it (no pid)"
fi

exit 0
