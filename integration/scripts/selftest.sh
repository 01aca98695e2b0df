#!/usr/bin/env bash
#
# selftest.sh: check the runtime test lab itself, without underlay's
# binaries: busybox image import into a private containerd and a private
# podman, plain containers with no network, the lab LAN (a macvlan slave in a
# throwaway netns pings the router), and that cleanup leaves nothing behind.
# When a demo or runtime test fails, run this to tell a broken host from a
# broken underlay. Root only; prefix "ulst".
set -Eeuo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

((EUID == 0)) || ul_die "run as root"
ul_trap_init
T0=$SECONDS
P=ulst

step "packages"
ensure_pkgs containerd runc podman busybox-static iproute2

WORK=$(mktemp -d /tmp/ulst.XXXXXX)
ul_defer ul_rm_tree "$WORK"
IMG=localhost/underlay/busybox:latest

step "lab LAN: ${P}up <-> ${P}-lan (router 10.77.9.1)"
make_lab_lan "$P" 10.77.9.1/24
lab_lan_probe "$P" 10.77.9.200/24 || ul_die "a macvlan slave of ${P}up cannot ping the router"
echo "macvlan slave on ${P}up pinged 10.77.9.1"

step "busybox image"
build_busybox_image "$WORK/busybox.tar" "$IMG"
tar -tf "$WORK/busybox.tar"

step "private containerd"
start_containerd "$WORK/ctrd" "$P"
import_image_containerd "$WORK/busybox.tar"
uctr images ls -q

step "plain container through containerd (own empty netns)"
uctr_run "$IMG" "$P-c1" sleep 300
uctr_exec "$P-c1" ip -o link
uctr_exec "$P-c1" sh -c 'ping -c1 -W1 10.77.9.1 >/dev/null 2>&1 && exit 1 || echo "no route out, as expected"'
uctr_remove "$P-c1"
[[ -z $(uctr container ls -q) ]] || ul_die "container still listed"

step "private podman"
podman_setup "$WORK/podman"
upodman load -q -i "$WORK/busybox.tar"
upodman run -d --network none --name "$P-p1" "$IMG" sleep 300
upodman exec "$P-p1" ip -o link
upodman rm -f -t 0 "$P-p1" >/dev/null
[[ -z $(upodman ps -aq) ]] || ul_die "podman container still listed"

step "cleanup"
ul_run_cleanups
left=$(ip -o link | grep -c "$P" || true)
((left == 0)) || ul_die "links left: $(ip -o link | grep "$P")"
if ip netns list | grep -q "^$P"; then ul_die "netns left"; fi
[[ ! -e $WORK ]] || ul_die "$WORK left"
[[ ! -e /run/containerd || $UL_RUN_CONTAINERD_WAS_THERE == 1 ]] || ul_die "/run/containerd left"
echo "nothing left behind"
UL_STEP=""
printf '\nselftest passed in %ds\n' $((SECONDS - T0))
