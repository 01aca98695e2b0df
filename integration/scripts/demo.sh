#!/usr/bin/env bash
#
# demo.sh: underlay end to end with containerd, on a lab LAN that lives in
# network namespaces (nothing touches the host's real interfaces).
#
#   sudo BIN=/path/to/bin bash integration/scripts/demo.sh     (make demo)
#
# Installs what is missing (containerd runc busybox-static iproute2), starts a
# private containerd and underlayd under a temp dir, builds a busybox image
# offline, creates the lab LAN (router 10.77.0.1 in netns uldemo-lan, macvlan
# parent uldemoup), creates a macvlan network, runs two containers through
# underlay-runc (one with a static address), shows their addresses and
# routes, pings between them and to the router, then removes everything and
# shows the addresses were released. Exits non-zero naming the failed step.
set -Eeuo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/lib.sh"

BIN=${BIN:-$(cd "$HERE/../.." && pwd)/bin}
BIN=$(cd "$BIN" 2>/dev/null && pwd) || ul_die "BIN directory not found; run make build"
P=uldemo
NET=demo-net
SUBNET=10.77.0.0/24
ROUTER=10.77.0.1
STATIC_IP=10.77.0.50
HOST_IP=10.77.0.253
IMG=localhost/underlay/busybox:latest
A=$P-a
B=$P-b

((EUID == 0)) || ul_die "the demo creates namespaces, links and containers: run it as root"
for b in underlayd underlay underlay-hook underlay-runc; do
	[[ -x $BIN/$b ]] || ul_die "$BIN/$b missing: run make build"
done
ul_trap_init
T0=$SECONDS

# say: show a command as a user would type it (without the private socket,
# fifo and runc-root flags), then run it.
say() {
	local shown=("$@")
	case $1 in
	ul) shown=(underlay "${@:2}") ;;
	uctr) shown=(ctr -n "$UL_CTR_NS" "${@:2}") ;;
	uctr_run) shown=(ctr -n "$UL_CTR_NS" run -d "${@:2}") ;;
	esac
	printf '$ %s\n' "${shown[*]}"
	"$@"
}

# endpoint_lines: `underlay endpoint ls` without its header. (Callers grep a
# variable, not a pipe: with pipefail, grep -q closing early fails the pipe.)
endpoint_lines() {
	local out
	out=$(ul endpoint ls) || return 1
	tail -n +2 <<<"$out"
}

# container_ip C: eth0's IPv4 address inside container C.
container_ip() {
	local out
	out=$(uctr_exec_out "$1" ip -4 -o addr show dev eth0) || return 1
	awk 'NR == 1 { split($4, a, "/"); print a[1] }' <<<"$out"
}

ping_from() {
	local c=$1 to=$2 i
	for i in 1 2 3; do
		if uctr_exec "$c" ping -c 1 -W 2 "$to" >/dev/null 2>&1; then
			printf '  %-10s -> %-12s ok\n' "$c" "$to"
			return 0
		fi
	done
	uctr_exec "$c" ping -c 1 -W 2 "$to" || true
	ul_die "$c cannot ping $to"
}

step "packages (containerd runc busybox-static iproute2)"
ensure_pkgs containerd runc busybox-static iproute2
echo "ok"

WORK=$(mktemp -d /tmp/uldemo.XXXXXX)
ul_defer ul_rm_tree "$WORK"
# The shim, and so underlay-runc and underlay-hook, inherit containerd's env.
export UNDERLAY_SOCKET=$WORK/underlayd/underlay.sock

step "lab LAN: router $ROUTER in netns $P-lan, macvlan parent ${P}up"
make_lab_lan "$P" "$ROUTER/24"
lab_lan_probe "$P" 10.77.0.254/24 || ul_die "the lab LAN does not work (no underlay involved)"
echo "a plain macvlan on ${P}up reaches the router: the lab is fine"

step "private containerd and underlayd (state in $WORK)"
start_containerd "$WORK/containerd" "$P"
start_underlayd "$WORK/underlayd"
echo "containerd pid $UL_CONTAINERD_PID, underlayd pid $UL_UNDERLAYD_PID"

step "busybox image, built offline and imported"
build_busybox_image "$WORK/busybox.tar" "$IMG"
import_image_containerd "$WORK/busybox.tar"
uctr images ls -q

step "create the macvlan network"
# --host-address gives this host a shim on the parent, so that it reaches
# its own containers (the kernel keeps a parent from talking to its slaves).
say ul network create -d macvlan --subnet "$SUBNET" --gateway "$ROUTER" --host-address "$HOST_IP" -o parent="${P}up" "$NET"
say ul network ls

step "run two containers through underlay-runc"
say uctr_run --runc-binary "$BIN/underlay-runc" \
	--annotation io.underlay.network="$NET" "$IMG" "$A" sleep 3600
say uctr_run --runc-binary "$BIN/underlay-runc" \
	--annotation io.underlay.network="$NET" --annotation io.underlay.ip="$STATIC_IP" \
	"$IMG" "$B" sleep 3600

step "inside the containers"
for c in "$A" "$B"; do
	echo "--- $c: ip addr"
	uctr_exec_out "$c" ip addr
	echo "--- $c: ip route"
	uctr_exec_out "$c" ip route
done
IP_A=$(container_ip "$A")
IP_B=$(container_ip "$B")
[[ -n $IP_A ]] || ul_die "$A has no IPv4 address on eth0"
[[ $IP_B == "$STATIC_IP" ]] || ul_die "$B has '$IP_B' on eth0, want the static $STATIC_IP"
for c in "$A" "$B"; do
	routes=$(uctr_exec_out "$c" ip route)
	grep -q "^default via $ROUTER " <<<"$routes" || ul_die "$c has no default route via $ROUTER"
done
echo "$A got $IP_A (dynamic), $B got $IP_B (static); both route via $ROUTER"

step "ping"
ping_from "$A" "$IP_B"
ping_from "$B" "$IP_A"
ping_from "$A" "$ROUTER"
ping_from "$B" "$ROUTER"
if ip netns exec "$P-lan" busybox ping -c 1 -W 2 "$IP_A" >/dev/null; then
	printf '  %-10s -> %-12s ok\n' router "$IP_A"
else
	ul_die "the router cannot ping $A ($IP_A)"
fi
# The host itself, through its shim, and back.
if busybox ping -c 1 -W 2 "$IP_A" >/dev/null; then
	printf '  %-10s -> %-12s ok\n' "this host" "$IP_A"
else
	ul_die "this host cannot ping $A ($IP_A) through its shim"
fi
ping_from "$A" "$HOST_IP"

step "underlay endpoint ls"
say ul endpoint ls
eps=$(endpoint_lines)
for c in "$A" "$B"; do
	grep -q -- "$c" <<<"$eps" || ul_die "endpoint ls does not list $c"
done

step "stop and delete the containers"
for c in "$A" "$B"; do
	say uctr task kill -s SIGKILL "$c"
done
for c in "$A" "$B"; do
	uctr_remove "$c" || ul_die "could not delete $c"
	echo "$c deleted"
done

step "addresses released"
say ul endpoint ls
deadline=$((SECONDS + 5))
while :; do
	eps=$(endpoint_lines) || ul_die "underlay endpoint ls failed"
	grep -q -e "$A" -e "$B" <<<"$eps" || break
	((SECONDS < deadline)) || ul_die "endpoint ls still lists deleted containers"
	sleep 0.2
done
echo "no endpoints left for $A and $B"
# The static address is free again: a new container can take it.
say uctr_run --runc-binary "$BIN/underlay-runc" \
	--annotation io.underlay.network="$NET" --annotation io.underlay.ip="$STATIC_IP" \
	"$IMG" "$P-c" sleep 3600
[[ $(container_ip "$P-c") == "$STATIC_IP" ]] || ul_die "$P-c did not get $STATIC_IP back"
echo "$P-c took $STATIC_IP again"
uctr_remove "$P-c" || ul_die "could not delete $P-c"

step "remove the network"
say ul network rm "$NET"
say ul network ls

step "clean up"
ul_run_cleanups
UL_STEP=""
printf '\ndemo passed in %ds\n' $((SECONDS - T0))
