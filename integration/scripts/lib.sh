# shellcheck shell=bash
#
# lib.sh: helpers for underlay's real-container demo and manual runtime tests.
# Source it from bash (`. integration/scripts/lib.sh`); it sets no shell
# options of its own and starts nothing until asked.
#
# Everything here is private and prefixed so it can run beside a system
# containerd, a system podman and other people's tests:
#   - containerd: own root, state, socket and runc root under a directory
#     the caller passes; never /run/containerd/containerd.sock.
#   - podman: own containers.conf, storage.conf, --root, --runroot, --tmpdir.
#   - network: a netns "${PREFIX}-lan" and a veth whose host end is
#     "${PREFIX}up"; lab addresses only (10.77.x.y), never the host's eth0.
# Cleanup is a LIFO stack (ul_defer) run from an EXIT trap (ul_trap_init), so
# a failure half-way still removes what was created. Cleanup functions kill
# only PIDs this shell started (or shims of the private containerd, found by
# its unique socket path) and delete only their own prefixed objects.

UL_CLEANUPS=()
UL_STEP=""
UL_LOGS=()          # log files worth showing when something fails
UL_EXEC_SEQ=0

ul_log() { printf '%s\n' "$*" >&2; }
ul_die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# step NAME: announce a step; the EXIT trap names it if the script fails.
step() {
	UL_STEP="$*"
	printf '\n==> %s\n' "$*"
}

# ul_defer CMD [ARG...]: run CMD at exit, last deferred first.
ul_defer() {
	local q
	printf -v q '%q ' "$@"
	UL_CLEANUPS+=("$q")
}

ul_run_cleanups() {
	local i e=0
	[[ $- == *e* ]] && e=1
	set +e
	for ((i = ${#UL_CLEANUPS[@]} - 1; i >= 0; i--)); do
		eval "${UL_CLEANUPS[i]}" || ul_log "cleanup: '${UL_CLEANUPS[i]}' failed"
	done
	UL_CLEANUPS=()
	((e)) && set -e
	return 0
}

ul__on_exit() {
	local rc=$?
	set +e +u
	trap - ERR
	if ((rc != 0)); then
		ul_log ""
		ul_log "FAILED (exit $rc)${UL_STEP:+ during step: $UL_STEP}"
		local f
		for f in "${UL_LOGS[@]}"; do
			[[ -s $f ]] || continue
			ul_log "--- $f (last lines, info level left out) ---"
			grep -v 'level=info' "$f" | tail -n 15 >&2
		done
	fi
	ul_run_cleanups
	exit "$rc"
}

# ul_trap_init: run the cleanup stack on EXIT, and turn INT/TERM into EXIT.
ul_trap_init() {
	trap ul__on_exit EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

# ul_kill_pid PID [SECONDS]: SIGTERM, wait, then SIGKILL. Only for PIDs we
# started ourselves.
ul_kill_pid() {
	local pid=$1 secs=${2:-10} i
	[[ -n $pid ]] || return 0
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < secs * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		ul_log "pid $pid ignored SIGTERM; killing"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}

# ul_umount_under DIR: unmount whatever is still mounted below DIR (deepest
# first), so that rm -rf cannot walk into a live container rootfs.
ul_umount_under() {
	local dir=$1 m
	[[ -d $dir ]] || return 0
	dir=$(cd "$dir" && pwd -P)
	awk -v d="$dir/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo |
		sort -r | while read -r m; do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
	done
}

# ul_rm_tree DIR: unmount leftovers and remove DIR.
ul_rm_tree() {
	local dir=$1
	[[ -n $dir && -d $dir ]] || return 0
	ul_umount_under "$dir"
	rm -rf --one-file-system "$dir"
}

# ---------------------------------------------------------------- packages

# ensure_pkgs PKG...: apt-get install the packages that are not installed
# yet; apt-get update first, once, when something has to be installed.
ensure_pkgs() {
	local missing=() p
	for p in "$@"; do
		if [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) != *"install ok installed"* ]]; then
			missing+=("$p")
		fi
	done
	((${#missing[@]} == 0)) && return 0
	((EUID == 0)) || ul_die "packages missing (${missing[*]}) and not root to install them"
	ul_log "installing: ${missing[*]}"
	local apt=(apt-get -q -y -o DPkg::Lock::Timeout=600)
	# A fresh machine may have empty lists; an old one stale lists. Update once.
	if [[ -z ${UL_APT_UPDATED:-} ]]; then
		DEBIAN_FRONTEND=noninteractive "${apt[@]}" update >&2 || ul_die "apt-get update failed"
		UL_APT_UPDATED=1
	fi
	DEBIAN_FRONTEND=noninteractive "${apt[@]}" install "${missing[@]}" >&2 ||
		ul_die "apt-get install ${missing[*]} failed"
}

# ---------------------------------------------------------------- image

# build_busybox_image OUT.tar NAME:TAG: a one-layer image made from
# busybox-static (every applet linked, so ip, ping, sh, sleep are there),
# packed as a docker-archive tar that `ctr images import` and `podman load`
# read without a registry. Use a fully qualified NAME (localhost/...) so both
# tools store it under the same name.
build_busybox_image() {
	local out=$1 ref=$2 busybox=${UL_BUSYBOX:-/bin/busybox}
	[[ -x $busybox ]] || ul_die "$busybox not found (apt-get install busybox-static)"
	# The image has no libc: a dynamic busybox would not run in it.
	ldd "$busybox" >/dev/null 2>&1 && ul_die "$busybox is dynamically linked; need busybox-static"
	local tmp
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/ulimage.XXXXXX") || return 1
	local root=$tmp/rootfs
	mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,root,tmp,proc,sys,dev,run,var/run}
	chmod 1777 "$root/tmp"
	cp "$busybox" "$root/bin/busybox"
	# One process instead of ~270 `ln`s (forks are slow on busy hosts): inside
	# the chroot, busybox links every applet to /bin/busybox in its usual
	# directory (bin, sbin, usr/bin, usr/sbin).
	if ((EUID == 0)); then
		chroot "$root" /bin/busybox --install -s || ul_die "busybox --install failed"
		rm -f "$root/linuxrc"
	else
		local applet
		while read -r applet; do
			[[ -n $applet && $applet != bin/busybox ]] || continue
			ln -sf /bin/busybox "$root/$applet"
		done < <("$root/bin/busybox" --list-full)
	fi
	local a
	for a in ip ping sh sleep; do
		[[ -L $root/bin/$a || -L $root/sbin/$a || -L $root/usr/bin/$a || -L $root/usr/sbin/$a ]] ||
			ul_die "busybox has no '$a' applet"
	done
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"

	# Deterministic layer: same busybox, same digest.
	(cd "$root" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort |
		tar --no-recursion --numeric-owner --owner=0 --group=0 --mtime=@0 \
			-cf "$tmp/layer.tar" -T -) || ul_die "packing layer.tar failed"
	local diff arch
	diff=$(sha256sum "$tmp/layer.tar" | cut -d' ' -f1)
	arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
	case $arch in i386) arch=386 ;; armhf | armel) arch=arm ;; esac
	cat >"$tmp/config.json" <<-EOF
		{"architecture":"$arch","os":"linux","created":"1970-01-01T00:00:00Z",
		 "config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"]},
		 "rootfs":{"type":"layers","diff_ids":["sha256:$diff"]},
		 "history":[{"created":"1970-01-01T00:00:00Z","created_by":"underlay build_busybox_image"}]}
	EOF
	printf '[{"Config":"config.json","RepoTags":["%s"],"Layers":["layer.tar"]}]\n' "$ref" >"$tmp/manifest.json"
	tar --numeric-owner --owner=0 --group=0 --mtime=@0 -C "$tmp" \
		-cf "$out" manifest.json config.json layer.tar || ul_die "packing $out failed"
	rm -rf "$tmp"
}

# ---------------------------------------------------------------- containerd

# start_containerd DIR [NAMESPACE]: a private containerd (root, state, socket,
# runc root under DIR; CRI disabled), started in the background with the
# caller's environment: export UNDERLAY_SOCKET before calling, because the
# shim (and so underlay-runc and underlay-hook) inherits containerd's env.
# Sets UL_CONTAINERD_SOCK, UL_CONTAINERD_PID, UL_CONTAINERD_DIR, UL_CTR_NS,
# UL_RUNC_ROOT, and defers stop_containerd.
start_containerd() {
	local dir=$1 ns=${2:-${UL_CTR_NS:-default}}
	mkdir -p "$dir"/{root,state,opt,runc}
	dir=$(cd "$dir" && pwd -P)
	UL_CONTAINERD_DIR=$dir
	UL_CONTAINERD_SOCK=$dir/containerd.sock
	UL_CTR_NS=$ns
	UL_RUNC_ROOT=$dir/runc
	UL_FIFO_DIR=$dir/fifo
	# The 1.6 shim puts its socket in /run/containerd/s whatever the config
	# says; remove those directories afterwards only if they were ours.
	UL_RUN_CONTAINERD_WAS_THERE=0
	[[ -e /run/containerd ]] && UL_RUN_CONTAINERD_WAS_THERE=1
	((${#UL_CONTAINERD_SOCK} < 100)) || ul_die "socket path too long: $UL_CONTAINERD_SOCK"
	cat >"$dir/config.toml" <<-EOF
		version = 2
		root = "$dir/root"
		state = "$dir/state"
		disabled_plugins = ["io.containerd.grpc.v1.cri"]
		[grpc]
		  address = "$UL_CONTAINERD_SOCK"
		[ttrpc]
		  address = "$UL_CONTAINERD_SOCK.ttrpc"
		[debug]
		  address = ""
		[metrics]
		  address = ""
		[plugins."io.containerd.internal.v1.opt"]
		  path = "$dir/opt"
	EOF
	containerd --config "$dir/config.toml" >"$dir/containerd.log" 2>&1 &
	UL_CONTAINERD_PID=$!
	UL_LOGS+=("$dir/containerd.log")
	ul_defer stop_containerd
	local i
	for ((i = 0; i < 200; i++)); do
		kill -0 "$UL_CONTAINERD_PID" 2>/dev/null || {
			tail -n 20 "$dir/containerd.log" >&2
			ul_die "containerd exited during start-up"
		}
		[[ -S $UL_CONTAINERD_SOCK ]] && ctr --address "$UL_CONTAINERD_SOCK" version >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	ul_die "containerd socket $UL_CONTAINERD_SOCK not ready after 20s"
}

# uctr ARG...: ctr against the private containerd and namespace.
uctr() { ctr --address "$UL_CONTAINERD_SOCK" --namespace "$UL_CTR_NS" "$@"; }

# uctr_run ARG...: `ctr run -d` with the private runc root and fifo dir;
# pass the rest as to ctr run (options, IMAGE, ID, COMMAND...).
uctr_run() {
	uctr run -d --null-io --fifo-dir "$UL_FIFO_DIR" --runc-root "$UL_RUNC_ROOT" "$@"
}

# uctr_exec CONTAINER CMD...: run CMD in a running task (unique exec id).
uctr_exec() {
	local c=$1
	shift
	# Called in $(...) too, where the counter's increment is lost: add
	# $BASHPID and $RANDOM so exec ids stay unique.
	UL_EXEC_SEQ=$((UL_EXEC_SEQ + 1))
	uctr task exec --fifo-dir "$UL_FIFO_DIR" --exec-id "ulx$BASHPID-$UL_EXEC_SEQ-$RANDOM" "$c" "$@"
}

# uctr_exec_out CONTAINER CMD...: uctr_exec for a CMD that always prints
# something: ctr 1.6 `task exec` now and then exits 0 having lost a short
# process's output, so empty output is retried (up to 3 tries).
uctr_exec_out() {
	local out i
	for i in 1 2 3; do
		out=$(uctr_exec "$@") || return 1
		if [[ -n $out ]]; then
			printf '%s\n' "$out"
			return 0
		fi
	done
	ul_log "ctr task exec $*: no output in 3 tries"
	return 1
}

# uctr_remove CONTAINER: kill the task, wait until it stopped, delete it
# (runc runs the poststop hook at delete), then delete the container.
uctr_remove() {
	local c=$1 i st tasks
	tasks=$(uctr task ls 2>/dev/null | awk 'NR > 1 { print $1 }')
	if grep -qx -- "$c" <<<"$tasks"; then
		uctr task kill -s SIGKILL "$c" >/dev/null 2>&1 || true
		for ((i = 0; i < 100; i++)); do
			st=$(uctr task ls 2>/dev/null | awk -v c="$c" '$1 == c {print $3}')
			[[ $st == RUNNING ]] || break
			sleep 0.1
		done
		uctr task rm "$c" >/dev/null 2>&1 || uctr task rm -f "$c" >/dev/null || return 1
	fi
	if grep -qx -- "$c" <<<"$(uctr container ls -q 2>/dev/null)"; then
		uctr container rm "$c" >/dev/null || return 1
	fi
}

# stop_containerd: remove every task and container of the private instance
# (namespace UL_CTR_NS), stop containerd, reap its shims, unmount leftovers.
stop_containerd() {
	[[ -n ${UL_CONTAINERD_PID:-} ]] || return 0
	local c
	if kill -0 "$UL_CONTAINERD_PID" 2>/dev/null; then
		for c in $(uctr container ls -q 2>/dev/null); do
			uctr_remove "$c" || ul_log "cleanup: could not remove container $c"
		done
		for c in $(uctr images ls -q 2>/dev/null); do
			uctr images rm "$c" >/dev/null 2>&1 || true
		done
		uctr namespaces rm "$UL_CTR_NS" >/dev/null 2>&1 || true
	fi
	ul_kill_pid "$UL_CONTAINERD_PID" 10
	UL_CONTAINERD_PID=""
	# Shims outlive containerd by design. Ours carry our unique socket path.
	local p cmd
	for p in /proc/[0-9]*; do
		cmd=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
		case $cmd in
		*containerd-shim*"-address $UL_CONTAINERD_SOCK "*)
			ul_log "cleanup: killing leftover shim ${p#/proc/}"
			kill -KILL "${p#/proc/}" 2>/dev/null || true
			;;
		esac
	done
	ul_umount_under "$UL_CONTAINERD_DIR"
	if ((UL_RUN_CONTAINERD_WAS_THERE == 0)); then
		rmdir /run/containerd/s /run/containerd/fifo /run/containerd 2>/dev/null || true
	fi
}

# import_image_containerd TAR: load a docker-archive into the private containerd.
import_image_containerd() {
	uctr images import "$1" >/dev/null ||
		ul_die "ctr images import $1 failed"
}

# ---------------------------------------------------------------- underlayd

# start_underlayd DIR [ARG...]: $BIN/underlayd with its socket and state under
# DIR (the socket is $UNDERLAY_SOCKET when set). It follows the private
# containerd's events when one is running (UL_UNDERLAYD_EVENTS=0 turns that off).
# Sets UL_UNDERLAY_SOCK and UL_UNDERLAYD_PID; defers stop_underlayd.
start_underlayd() {
	local dir=$1
	shift
	: "${BIN:?BIN must point at the directory holding underlayd}"
	mkdir -p "$dir/state"
	dir=$(cd "$dir" && pwd -P)
	UL_UNDERLAY_SOCK=${UNDERLAY_SOCKET:-$dir/underlay.sock}
	local args=(--socket "$UL_UNDERLAY_SOCK" --state-dir "$dir/state")
	# Releasing on containerd events is a second path beside the poststop
	# hook.
	if [[ ${UL_UNDERLAYD_EVENTS:-1} == 1 && -n ${UL_CONTAINERD_SOCK:-} ]]; then
		args+=(--containerd-address "$UL_CONTAINERD_SOCK")
	fi
	"$BIN/underlayd" "${args[@]}" "$@" >"$dir/underlayd.log" 2>&1 &
	UL_UNDERLAYD_PID=$!
	UL_LOGS+=("$dir/underlayd.log")
	ul_defer stop_underlayd
	local i
	for ((i = 0; i < 100; i++)); do
		kill -0 "$UL_UNDERLAYD_PID" 2>/dev/null || {
			tail -n 20 "$dir/underlayd.log" >&2
			ul_die "underlayd exited during start-up"
		}
		[[ -S $UL_UNDERLAY_SOCK ]] && return 0
		sleep 0.1
	done
	ul_die "underlayd socket $UL_UNDERLAY_SOCK not ready after 10s"
}

stop_underlayd() {
	ul_kill_pid "${UL_UNDERLAYD_PID:-}" 10
	UL_UNDERLAYD_PID=""
}

# ul ARG...: the underlay CLI against our underlayd.
ul() { "$BIN/underlay" --socket "$UL_UNDERLAY_SOCK" "$@"; }

# ---------------------------------------------------------------- lab LAN

# make_lab_lan PREFIX [ROUTER_CIDR]: a "LAN" for macvlan tests.
#
#   host netns                           netns ${PREFIX}-lan
#   ${PREFIX}up  <------- veth ------->  lan0 (ROUTER_CIDR, the "router")
#     ^ macvlan parent: slaves created on it (and moved into containers)
#       reach lan0 over the veth, and each other in bridge mode.
#
# The veth is the switch: a frame a slave sends leaves through the parent to
# lan0; frames from lan0 reach the slave whose MAC they are for. The host end
# has no address, so the host stack stays out of it.
# Sets UL_LAN_NS, UL_LAN_UPLINK, UL_LAN_ROUTER; defers delete_lab_lan.
make_lab_lan() {
	local p=$1 router=${2:-10.77.0.1/24}
	((${#p} <= 12)) || ul_die "prefix '$p' too long for interface names"
	delete_lab_lan "$p" # a crashed earlier run
	UL_LAN_NS=$p-lan
	UL_LAN_UPLINK=${p}up
	UL_LAN_ROUTER=${router%/*}
	ul_defer delete_lab_lan "$p"
	ip netns add "$UL_LAN_NS" || return 1
	ip link add "$UL_LAN_UPLINK" type veth peer name "${p}dn" || return 1
	ip link set "${p}dn" netns "$UL_LAN_NS" || return 1
	ip -n "$UL_LAN_NS" link set "${p}dn" name lan0 || return 1
	ip -n "$UL_LAN_NS" addr add "$router" dev lan0 || return 1
	ip -n "$UL_LAN_NS" link set lo up || return 1
	ip -n "$UL_LAN_NS" link set lan0 up || return 1
	ip link set "$UL_LAN_UPLINK" up || return 1
}

# delete_lab_lan PREFIX: remove the netns and veth of make_lab_lan (and a
# probe netns), only those with this prefix.
delete_lab_lan() {
	local p=$1
	ip link del "${p}up" 2>/dev/null || true
	ip netns del "$p-probe" 2>/dev/null || true
	ip netns del "$p-lan" 2>/dev/null || true
}

# lab_lan_probe PREFIX ADDR/LEN: check the lab LAN from a throwaway netns
# holding a macvlan slave of the uplink: ping the router. No containers,
# no underlay: this tells a broken lab from a broken underlay.
lab_lan_probe() {
	local p=$1 addr=$2 ns=$1-probe rc=0
	ip netns del "$ns" 2>/dev/null || true
	ip netns add "$ns" || return 1
	ip link add "${p}pr" link "${p}up" type macvlan mode bridge &&
		ip link set "${p}pr" netns "$ns" &&
		ip -n "$ns" link set "${p}pr" name eth0 &&
		ip -n "$ns" addr add "$addr" dev eth0 &&
		ip -n "$ns" link set eth0 up &&
		ip netns exec "$ns" busybox ping -c 1 -W 2 "$UL_LAN_ROUTER" >/dev/null || rc=1
	ip link del "${p}pr" 2>/dev/null || true
	ip netns del "$ns" || true
	return $rc
}

# ---------------------------------------------------------------- podman

# podman_setup DIR: a private podman (own containers.conf and storage.conf,
# root, runroot, tmpdir, network config dir, events log) under DIR, with the
# settings this host needs: runc (crun fails on hybrid cgroups), cgroupfs,
# file events, ulimits no higher than the host's.
# Exports CONTAINERS_CONF, CONTAINERS_STORAGE_CONF; sets UL_PODMAN_DIR;
# defers podman_teardown. Call upodman, not podman.
podman_setup() {
	local dir=$1
	mkdir -p "$dir"/{root,runroot,tmp,net,hooks}
	dir=$(cd "$dir" && pwd -P)
	# podman refuses a runroot longer than 50 characters.
	((${#dir} <= 42)) || ul_die "podman dir $dir too long (runroot must be <= 50 chars)"
	UL_PODMAN_DIR=$dir
	cat >"$dir/containers.conf" <<-EOF
		[containers]
		default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
		netns = "none"
		[engine]
		runtime = "runc"
		cgroup_manager = "cgroupfs"
		events_logger = "file"
		events_logfile_path = "$dir/events.log"
		tmp_dir = "$dir/tmp"
		[network]
		network_config_dir = "$dir/net"
	EOF
	cat >"$dir/storage.conf" <<-EOF
		[storage]
		driver = "overlay"
		graphroot = "$dir/root"
		runroot = "$dir/runroot"
	EOF
	export CONTAINERS_CONF=$dir/containers.conf
	export CONTAINERS_STORAGE_CONF=$dir/storage.conf
	ul_defer podman_teardown
}

# upodman ARG...: podman with the private configuration (and the hooks dir
# of podman_hooks_dir, once written).
upodman() {
	local hooks=()
	[[ -n ${UL_PODMAN_HOOKS:-} ]] && hooks=(--hooks-dir "$UL_PODMAN_HOOKS")
	podman --root "$UL_PODMAN_DIR/root" --runroot "$UL_PODMAN_DIR/runroot" \
		--tmpdir "$UL_PODMAN_DIR/tmp" --cgroup-manager cgroupfs \
		--events-backend file --runtime runc "${hooks[@]}" "$@"
}

# podman_hooks_dir DIR HOOK SOCKET: hooks.d JSON (schema 1.0.0) that runs
# HOOK (the built underlay-hook) at createRuntime and poststop for containers
# annotated io.underlay.network, with UNDERLAY_SOCKET=SOCKET. Sets
# UL_PODMAN_HOOKS, which upodman passes as --hooks-dir.
podman_hooks_dir() {
	local dir=$1 hook=$2 sock=$3 stage
	mkdir -p "$dir"
	UL_PODMAN_HOOKS=$(cd "$dir" && pwd -P)
	for stage in createRuntime poststop; do
		cat >"$dir/underlay-$stage.json" <<-EOF
			{
			  "version": "1.0.0",
			  "hook": {
			    "path": "$hook",
			    "args": ["underlay-hook", "$stage"],
			    "env": ["UNDERLAY_SOCKET=$sock"],
			    "timeout": 30
			  },
			  "when": {"annotations": {"^io\\\\.underlay\\\\.network\$": ".*"}},
			  "stages": ["$stage"]
			}
		EOF
	done
}

# podman_teardown: remove every container (podman runs poststop hooks on
# removal) and image of the private podman, then unmount leftovers.
podman_teardown() {
	[[ -n ${UL_PODMAN_DIR:-} && -d $UL_PODMAN_DIR ]] || return 0
	local ids
	ids=$(upodman ps -aq 2>/dev/null)
	if [[ -n $ids ]]; then
		# shellcheck disable=SC2086 # one id per word
		upodman rm -f -t 0 $ids >/dev/null 2>&1 || true
	fi
	upodman rmi -a -f >/dev/null 2>&1 || true
	ul_umount_under "$UL_PODMAN_DIR"
	return 0
}
