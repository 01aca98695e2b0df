#!/usr/bin/env bash
# run.sh: underlay's benchmark (make bench). Installs what it needs with
# apt-get, builds the binaries it measures (or uses $BIN), and runs ulbench,
# which prints the table and writes the JSON. Arguments go to ulbench
# (e.g. -n 50 -c 10 for a quick run; -h for all).
#
# Everything it creates in the kernel is named ulb* (netns ulb-lan, veths
# ulbpa..ulbph/ulbqa..ulbqh; another prefix with -lab) and removed on exit,
# even on failure.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
repo=$(cd "$here/../.." && pwd -P)

((EUID == 0)) || { echo "run.sh: needs root (network namespaces, macvlan)" >&2; exit 1; }
command -v go >/dev/null || { echo "run.sh: go not found on PATH (the module needs the Go of go.mod)" >&2; exit 1; }

pkgs=(containernetworking-plugins netavark containerd iproute2 util-linux etcd-server dnsmasq-base)
missing=()
for p in "${pkgs[@]}"; do
	[[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == *"install ok installed"* ]] || missing+=("$p")
done
if ((${#missing[@]})); then
	echo "run.sh: installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get -q -y -o DPkg::Lock::Timeout=600 update >&2
	apt-get -q -y -o DPkg::Lock::Timeout=600 install --no-install-recommends "${missing[@]}" >&2
fi

# -lab PREFIX (ulbench's) renames the lab; the sweep follows it.
lab=ulb
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
	case ${args[i]} in
	-lab | --lab) lab=${args[i + 1]:-ulb} ;;
	-lab=* | --lab=*) lab=${args[i]#*=} ;;
	esac
done

build=$(mktemp -d /var/tmp/ulbench-build.XXXXXX)
sweep() {
	local p
	for p in a b c d e f g h; do ip link del "${lab}p$p" 2>/dev/null || true; done
	ip netns del "$lab-lan" 2>/dev/null || true
	rm -rf "$build"
}
trap sweep EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cd "$repo"
export CGO_ENABLED=0
flags=(-trimpath -ldflags '-s -w')
if [[ -z ${BIN:-} ]]; then
	BIN=$build/bin
	echo "run.sh: building underlayd, underlay, underlay-hook into $BIN" >&2
	go build "${flags[@]}" -o "$BIN/underlayd" ./daemon
	go build "${flags[@]}" -o "$BIN/underlay" ./daemon/cli
	go build "${flags[@]}" -o "$BIN/underlay-hook" ./hook
	go build "${flags[@]}" -o "$BIN/underlay-cni" ./cni
fi
# The floor is built exactly like the hook: same flags, static.
go build "${flags[@]}" -o "$build/ulfloor" ./integration/bench/cmd/ulfloor
go build -o "$build/ulbench" ./integration/bench/cmd/ulbench

"$build/ulbench" -bin "$BIN" -floor "$build/ulfloor" -repo "$repo" "$@"
