#!/usr/bin/env bash
# run.sh - boot Debian's own kernel in qemu and run Go test binaries inside it.
#
# Usage: run.sh [--timeout SECS] [--log FILE] TESTBIN [TESTBIN...] -- [test args]
#
# The host kernel lacks ipvlan, 802.1q, dummy (and module loading), so tests
# needing them run here: a throwaway VM (TCG, no KVM needed) booting the kernel
# from Debian's linux-image package, with a busybox initramfs that loads the
# needed modules, runs each test binary in turn as root and prints a per-run
# marker RESULT_<nonce>: PASS|FAIL on the serial console.
#
# Exit status: 0 all tests passed; 1 a test (or module load) failed;
# 2 usage/setup error; 3 VM did not produce a result (kernel panic, qemu
# error); 124 timeout.
#
# Environment (all optional):
#   UNDERLAY_VM_CACHE       cache dir (default /var/cache/underlay-vm)
#   UNDERLAY_VM_TIMEOUT     default timeout in seconds (300)
#   UNDERLAY_VM_MODULES     extra kernel modules to load (space separated)
#   UNDERLAY_VM_KERNEL_PKG  kernel package name[=version] instead of the one
#                           linux-image-amd64 depends on
#   UNDERLAY_VM_REFRESH     1: re-resolve linux-image-amd64 now (otherwise
#                           at most once a day)
#   UNDERLAY_VM_MEM, UNDERLAY_VM_SMP  guest RAM (MiB, 1024) and CPUs (2)
#   UNDERLAY_VM_MACHINE     qemu machine (pc; microvm boots ~0.3 s faster
#                           but hangs in TSC calibration in most boots)
#   UNDERLAY_VM_CPU         qemu CPU model (max: has RDRAND, so the guest's
#                           RNG is ready at once and Go's crypto/rand and
#                           getrandom do not block for a second)
#   UNDERLAY_VM_QEMU_ARGS   extra qemu arguments (word-split)
#   UNDERLAY_VM_BOOT        vmlinux (default: uncompressed ELF, PVH entry)
#                           or bzimage (Debian's XZ-compressed vmlinuz)
#   UNDERLAY_VM_BIOS        firmware passed with -bios (default qboot.rom
#                           when present; "default" = qemu's SeaBIOS)
#   UNDERLAY_VM_APPEND      extra kernel command line
#   UNDERLAY_VM_BIN         directory of programs for the tests (underlay's
#                           bin/), put at /underlay/bin; tests get
#                           UNDERLAY_BIN=/underlay/bin
#   UNDERLAY_VM_LOG         console log file (same as --log)
#   UNDERLAY_VM_QUIET       1: do not stream the console to stdout
set -euo pipefail

prog=${0##*/}
CACHE=${UNDERLAY_VM_CACHE:-/var/cache/underlay-vm}
TIMEOUT=${UNDERLAY_VM_TIMEOUT:-300}
MEM=${UNDERLAY_VM_MEM:-1024}
SMP=${UNDERLAY_VM_SMP:-2}
BOOT=${UNDERLAY_VM_BOOT:-vmlinux}
CPU=${UNDERLAY_VM_CPU:-max}
MACHINE=${UNDERLAY_VM_MACHINE:-pc}
LOGFILE=${UNDERLAY_VM_LOG:-}
QUIET=${UNDERLAY_VM_QUIET:-0}
# Modules wanted in the guest; their dependencies are added automatically.
MODULES="dummy veth llc stp garp mrp 8021q ipvlan macvlan bridge ${UNDERLAY_VM_MODULES:-}"
# Host binaries copied into the guest (with their shared libraries).
HOST_BINS="ip bridge dnsmasq"
# Bump when the layout of the cached base initramfs changes.
BASE_FORMAT=1

msg() { printf '%s: %s\n' "$prog" "$*" >&2; }
die() { msg "error: $*"; exit 2; }

usage() {
	sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
}

# ---------------------------------------------------------------- arguments
bins=()
while (($#)); do
	case $1 in
	--timeout) (($# >= 2)) || die "--timeout needs a value"; TIMEOUT=$2; shift 2 ;;
	--timeout=*) TIMEOUT=${1#*=}; shift ;;
	--log) (($# >= 2)) || die "--log needs a value"; LOGFILE=$2; shift 2 ;;
	--log=*) LOGFILE=${1#*=}; shift ;;
	-h | --help) usage; exit 0 ;;
	--) shift; break ;;
	-*) die "unknown option $1 (see $prog --help)" ;;
	*) bins+=("$1"); shift ;;
	esac
done
test_args=("$@")
((${#bins[@]})) || die "usage: $prog [--timeout SECS] [--log FILE] TESTBIN... -- [test args] (see --help)"
[[ $TIMEOUT =~ ^[0-9]+$ && $TIMEOUT -gt 0 ]] || die "bad timeout: $TIMEOUT"
for b in "${bins[@]}"; do
	[[ -f $b && -x $b ]] || die "not an executable file: $b"
done

# ------------------------------------------------------------------ helpers
work=$(mktemp -d "${TMPDIR:-/tmp}/underlay-vm.XXXXXX")
qpid=
keep_log=
# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() {
	local rc=$?
	if [[ -n $qpid ]] && kill -0 "$qpid" 2>/dev/null; then
		kill "$qpid" 2>/dev/null || true
		wait "$qpid" 2>/dev/null || true
	fi
	if [[ -n $keep_log && -f $work/console.log ]]; then
		local saved=${TMPDIR:-/tmp}/underlay-vm-console.${nonce:-x}.log
		cp "$work/console.log" "$saved" && msg "console log kept in $saved"
	fi
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT
trap 'msg "interrupted"; exit 130' INT TERM HUP

# is_dynamic FILE: true if FILE is a dynamically linked executable.
is_dynamic() {
	local out
	out=$(LC_ALL=C ldd "$1" 2>&1) || return 1
	[[ $out == *"=>"* || $out == *ld-linux* ]]
}

# elf_libs FILE: print the shared libraries (and loader) FILE needs.
elf_libs() {
	LC_ALL=C ldd "$1" 2>/dev/null | awk '
		$2 == "=>" && $3 ~ /^\// { print $3; next }
		$1 ~ /^\// { print $1 }'
}

apt_install() {
	[[ $(id -u) == 0 ]] || die "missing host packages ($*) and not root to install them"
	msg "installing host packages: $*"
	local apt=(apt-get -o DPkg::Lock::Timeout=600 -o Acquire::Retries=3 -y -q
		--no-install-recommends)
	if ! DEBIAN_FRONTEND=noninteractive "${apt[@]}" install "$@" >&2; then
		"${apt[@]}" update >&2 || true
		DEBIAN_FRONTEND=noninteractive "${apt[@]}" install "$@" >&2 ||
			die "apt-get install $* failed"
	fi
}

BUSYBOX=${UNDERLAY_VM_BUSYBOX:-/bin/busybox}
ensure_host_tools() {
	local need=()
	command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
	if [[ ! -x $BUSYBOX ]] || is_dynamic "$BUSYBOX"; then need+=(busybox-static); fi
	command -v xz >/dev/null || need+=(xz-utils)
	command -v ip >/dev/null || need+=(iproute2)
	command -v dnsmasq >/dev/null || need+=(dnsmasq-base)
	command -v dpkg-deb >/dev/null || need+=(dpkg)
	command -v flock >/dev/null || need+=(util-linux)
	((${#need[@]} == 0)) || apt_install "${need[@]}"
	if [[ ! -x $BUSYBOX ]] || is_dynamic "$BUSYBOX"; then die "$BUSYBOX is not a static busybox"; fi
}

# ------------------------------------------------------------ kernel cache
# Layout:
#   $CACHE/lock                   flock for all cache updates
#   $CACHE/current                name of the kernel dir in use (+ mtime =
#                                 last time linux-image-amd64 was resolved)
#   $CACHE/k/<pkg>_<ver>/         pkg.deb vmlinuz vmlinux config release .ok
#   $CACHE/k/<pkg>_<ver>/mods-<h> modules (*.ko, load order in "order")
#   $CACHE/base/<hash>.cpio       busybox + ip + libs + modules initramfs

# resolve_kernel_pkg: print "name version" of the kernel package to use.
resolve_kernel_pkg() {
	local spec=${UNDERLAY_VM_KERNEL_PKG:-} name ver dep out
	if [[ -n $spec ]]; then
		name=${spec%%=*}
		[[ $spec == *=* ]] && ver=${spec#*=} || ver=$(apt_version "$name")
	else
		out=$(apt-cache show --no-all-versions linux-image-amd64 2>/dev/null) || return 1
		dep=$(sed -n 's/^Depends: *\(linux-image-[^ ,]*\).*/\1/p' <<<"$out")
		dep=${dep%%$'\n'*}
		[[ -n $dep ]] || return 1
		name=$dep
		ver=$(apt_version "$name")
	fi
	[[ -n $name && -n $ver ]] || return 1
	echo "$name $ver"
}
apt_version() {
	local out v
	out=$(apt-cache show --no-all-versions "$1" 2>/dev/null) || return 0
	v=$(sed -n 's/^Version: *//p' <<<"$out")
	echo "${v%%$'\n'*}"
}

# extract_vmlinux BZIMAGE OUT: decompress the XZ payload of a bzImage.
extract_vmlinux() {
	local off
	# shellcheck disable=SC2013 # offsets are single words
	for off in $(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$1" | cut -d: -f1); do
		# tail dies of SIGPIPE when xz stops after the first stream: ignore it.
		if { tail -c +"$((off + 1))" "$1" || true; } | xz -dc --single-stream >"$2.tmp" 2>/dev/null &&
			[[ $(head -c4 "$2.tmp" | od -An -tx1 | tr -d ' \n') == 7f454c46 ]]; then
			mv "$2.tmp" "$2"
			return 0
		fi
	done
	rm -f "$2.tmp"
	return 1
}

# fetch_kernel NAME VER DIR: download and unpack the kernel package into DIR.
# Leaves the unpacked tree in $work/kroot for module extraction.
fetch_kernel() {
	local name=$1 ver=$2 dir=$3 dl tmp
	msg "fetching kernel package $name=$ver"
	dl=$(mktemp -d "$CACHE/dl.XXXXXX")
	chmod 755 "$dl"
	# apt drops privileges to _apt for the download when it can write there.
	if id _apt >/dev/null 2>&1; then chown _apt "$dl" 2>/dev/null || true; fi
	if ! (cd "$dl" && apt-get -q -o Acquire::Retries=3 download "$name=$ver" >&2); then
		apt-get -q update >&2 || true
		(cd "$dl" && apt-get -q -o Acquire::Retries=3 download "$name=$ver" >&2) ||
			{ rm -rf "$dl"; die "apt-get download $name=$ver failed"; }
	fi
	tmp=$dir.tmp.$$
	rm -rf "$tmp"
	mkdir -p "$tmp" "$work/kroot"
	mv "$dl"/*.deb "$tmp/pkg.deb"
	rm -rf "$dl"
	dpkg-deb --fsys-tarfile "$tmp/pkg.deb" | tar -x -C "$work/kroot"
	local vmlinuz=("$work"/kroot/boot/vmlinuz-*)
	[[ -f ${vmlinuz[0]} ]] || die "no /boot/vmlinuz-* in $name"
	cp "${vmlinuz[0]}" "$tmp/vmlinuz"
	cp "$work"/kroot/boot/config-* "$tmp/config" 2>/dev/null || true
	echo "${vmlinuz[0]##*/vmlinuz-}" >"$tmp/release"
	touch "$tmp/.ok"
	rm -rf "$dir"
	mv "$tmp" "$dir"
}

# unpack_modules KDIR: make sure $work/kroot holds the package's files.
unpack_modules() {
	[[ -d $work/kroot/lib/modules || -d $work/kroot/usr/lib/modules ]] && return 0
	mkdir -p "$work/kroot"
	dpkg-deb --fsys-tarfile "$1/pkg.deb" | tar -x -C "$work/kroot" \
		--wildcards './lib/modules/*' './usr/lib/modules/*' 2>/dev/null || true
}

# mod_depends FILE: print the module's dependencies: line 1 the hard ones
# (depends=, comma separated), line 2 the "softdep=pre:" ones.
mod_depends() {
	local cat=cat info
	case $1 in
	*.xz) cat="xz -dc" ;; *.zst) cat="zstd -dcq" ;; *.gz) cat="gzip -dc" ;;
	esac
	info=$($cat "$1" | LC_ALL=C tr '\0' '\n' | LC_ALL=C grep -a -E '^(depends|softdep)=' || true)
	LC_ALL=C sed -n 's/^depends=//p' <<<"$info" | tr ',' ' ' | tr '\n' ' '
	echo
	LC_ALL=C sed -n 's/^softdep=//p' <<<"$info" |
		LC_ALL=C sed -n 's/ *post:.*//; s/.*pre: *//p' | tr '\n' ' '
	echo
}

# build_modules KDIR OUT: copy MODULES and their dependencies into OUT as
# plain .ko files, with the insmod order in OUT/order.
build_modules() {
	local kdir=$1 out=$2 rel moddir f b m
	rel=$(cat "$kdir/release")
	unpack_modules "$kdir"
	moddir=$work/kroot/lib/modules/$rel
	[[ -d $moddir ]] || moddir=$work/kroot/usr/lib/modules/$rel
	[[ -d $moddir ]] || die "no modules directory for $rel in $kdir/pkg.deb"
	declare -A path=() builtin=() state=()
	while IFS= read -r -d '' f; do
		b=${f##*/}; b=${b%%.ko*}; path[${b//-/_}]=$f
	done < <(find "$moddir" -name '*.ko*' -print0)
	if [[ -f $moddir/modules.builtin ]]; then
		while IFS= read -r f; do
			b=${f##*/}; b=${b%%.ko*}; builtin[${b//-/_}]=1
		done <"$moddir/modules.builtin"
	fi
	local order=()
	visit() {
		local m=${1//-/_} d deps soft
		[[ ${state[$m]:-} == "done" ]] && return 0
		[[ ${state[$m]:-} == active ]] && die "module dependency cycle at $m"
		if [[ -z ${path[$m]:-} ]]; then
			[[ -n ${builtin[$m]:-} ]] && { state[$m]="done"; return 0; }
			die "kernel module $m not found in $rel"
		fi
		state[$m]=active
		{ read -r deps; read -r soft; } < <(mod_depends "${path[$m]}")
		for d in $deps; do visit "$d"; done
		# softdep pre names are often aliases (libcrc32c: "crc32c", the
		# module crc32c_generic); take what maps to a file, skip the rest.
		for d in $soft; do
			d=${d//-/_}
			if [[ -n ${path[$d]:-} ]]; then visit "$d"
			elif [[ -n ${path[${d}_generic]:-} ]]; then visit "${d}_generic"
			fi
		done
		state[$m]="done"
		order+=("$m")
	}
	for m in $MODULES; do visit "$m"; done
	local tmp=$out.tmp.$$
	rm -rf "$tmp"; mkdir -p "$tmp"
	for m in "${order[@]}"; do
		f=${path[$m]}
		case $f in
		*.xz) xz -dc "$f" >"$tmp/$m.ko" ;;
		*.zst) zstd -dcq "$f" >"$tmp/$m.ko" ;;
		*.gz) gzip -dc "$f" >"$tmp/$m.ko" ;;
		*) cp "$f" "$tmp/$m.ko" ;;
		esac
	done
	printf '%s\n' "${order[@]}" >"$tmp/order"
	rm -rf "$out"; mv "$tmp" "$out"
}

# cpio_dir DIR OUT: pack DIR as a newc cpio archive owned by root.
cpio_dir() {
	(cd "$1" && find . -mindepth 1 | LC_ALL=C sort | "$BUSYBOX" cpio -o -H newc -R 0:0 2>/dev/null) >"$2"
}

# build_base KDIR MODS OUT: the cached part of the initramfs.
build_base() {
	local kdir=$1 mods=$2 out=$3 r=$work/base rel a f bin lib
	rel=$(cat "$kdir/release")
	rm -rf "$r"
	mkdir -p "$r"/{usr/bin,usr/sbin,usr/lib/x86_64-linux-gnu,usr/lib64,etc,proc,sys,dev,run,tmp,root,tests,var}
	ln -s usr/bin "$r/bin"; ln -s usr/sbin "$r/sbin"
	ln -s usr/lib "$r/lib"; ln -s usr/lib64 "$r/lib64"
	ln -s ../run "$r/var/run"
	mkdir -p "$r/var/tmp"
	cp "$BUSYBOX" "$r/usr/bin/busybox"
	while IFS= read -r a; do
		a=${a#/}
		case $a in linuxrc | */busybox) continue ;; esac
		[[ $a == bin/* || $a == sbin/* ]] && a=usr/$a
		[[ -e $r/$a || -L $r/$a ]] || ln -s /usr/bin/busybox "$r/$a"
	done < <("$BUSYBOX" --list-full)
	for bin in $HOST_BINS; do
		f=$(command -v "$bin") || { msg "warning: host binary $bin not found"; continue; }
		rm -f "$r/usr/sbin/$bin" "$r/usr/bin/$bin"
		cp -L "$f" "$r/usr/sbin/$bin"
		for lib in $(elf_libs "$f"); do
			mkdir -p "$(dirname "$r/usr${lib#/usr}")"
			cp -L "$lib" "$r/usr${lib#/usr}"
		done
	done
	mkdir -p "$r/usr/lib/modules/$rel"
	cp "$mods"/*.ko "$r/usr/lib/modules/$rel/"
	cp "$mods/order" "$r/etc/modules.order"
	echo "root:x:0:0:root:/root:/bin/sh" >"$r/etc/passwd"
	echo "root:x:0:" >"$r/etc/group"
	printf '127.0.0.1 localhost\n::1 localhost\n' >"$r/etc/hosts"
	cpio_dir "$r" "$out.tmp.$$"
	mv "$out.tmp.$$" "$out"
	rm -rf "$r"
}

# sh_quote ARG: quote ARG for a POSIX shell.
sh_quote() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

# ------------------------------------------------------------- main flow
ensure_host_tools
mkdir -p "$CACHE"
exec 9>"$CACHE/lock"
flock 9 # one cache writer at a time; released after the cpio is assembled

kdir=
if [[ -n ${UNDERLAY_VM_KERNEL_PKG:-} || ${UNDERLAY_VM_REFRESH:-0} == 1 || ! -f $CACHE/current ]] ||
	[[ -n $(find "$CACHE/current" -mmin +1440 2>/dev/null) ]] ||
	[[ ! -f $CACHE/k/$(cat "$CACHE/current")/.ok ]]; then
	if ! kp=$(resolve_kernel_pkg); then
		msg "apt-cache does not know linux-image-amd64; running apt-get update"
		apt-get -q update >&2 || true
		kp=$(resolve_kernel_pkg) || kp=
	fi
	if [[ -n $kp ]]; then
		kname=${kp% *}; kver=${kp#* }
		kid=${kname}_${kver//[:\/]/_}
		[[ -f $CACHE/k/$kid/.ok ]] || { mkdir -p "$CACHE/k"; fetch_kernel "$kname" "$kver" "$CACHE/k/$kid"; }
		kdir=$CACHE/k/$kid
		[[ -n ${UNDERLAY_VM_KERNEL_PKG:-} ]] || echo "$kid" >"$CACHE/current"
	elif [[ -f $CACHE/current && -f $CACHE/k/$(cat "$CACHE/current")/.ok ]]; then
		msg "warning: cannot resolve the kernel package; using the cached one"
		kdir=$CACHE/k/$(cat "$CACHE/current")
	else
		die "cannot resolve linux-image-amd64 (apt-cache) and nothing is cached"
	fi
else
	kdir=$CACHE/k/$(cat "$CACHE/current")
fi
krel=$(cat "$kdir/release")
# The bzImage is XZ-compressed: decompressing it in TCG costs seconds per
# boot, so unpack the ELF vmlinux once and boot it through its PVH entry.
if [[ ! -f $kdir/vmlinux && ! -f $kdir/vmlinux.none ]] &&
	! extract_vmlinux "$kdir/vmlinuz" "$kdir/vmlinux"; then
	msg "warning: could not extract vmlinux from the bzImage; booting the bzImage"
	touch "$kdir/vmlinux.none"
fi

# shellcheck disable=SC2086 # word splitting intended
mhash=$(printf '%s\n' $MODULES | sort -u | sha256sum | cut -c1-16)
mods=$kdir/mods-$mhash
[[ -f $mods/order ]] || build_modules "$kdir" "$mods"

bhash=$( {
	echo "format $BASE_FORMAT $kdir $mhash $HOST_BINS"
	stat -L -c '%n %s %Y' "$BUSYBOX" "$mods/order"
	for bin in $HOST_BINS; do
		f=$(command -v "$bin") || continue
		# shellcheck disable=SC2046 # library paths have no spaces
		stat -L -c '%n %s %Y' "$f" $(elf_libs "$f")
	done
} | sha256sum | cut -c1-16)
base=$CACHE/base/$bhash.cpio
if [[ ! -f $base ]]; then
	mkdir -p "$CACHE/base"
	build_base "$kdir" "$mods" "$base"
	# keep only the newest few base archives
	# shellcheck disable=SC2012 # our own file names
	ls -t "$CACHE"/base/*.cpio 2>/dev/null | tail -n +6 | xargs -r rm -f
fi

# Per-run part of the initramfs: /init and the test binaries.
nonce=$(od -An -tx1 -N8 /dev/urandom | tr -d ' \n')
run=$work/run
mkdir -p "$run/tests" "$run/etc"
i=0
names=()
for b in "${bins[@]}"; do
	i=$((i + 1))
	n=$(printf '%02d-%s' "$i" "$(basename "$b")")
	names+=("$n")
	cp -L "$b" "$run/tests/$n"
	chmod 755 "$run/tests/$n"
	if is_dynamic "$b"; then
		msg "warning: $b is dynamically linked (build with CGO_ENABLED=0); copying its libraries"
		for lib in $(elf_libs "$b"); do
			mkdir -p "$run/usr$(dirname "${lib#/usr}")"
			cp -L "$lib" "$run/usr${lib#/usr}"
		done
	fi
done
# UNDERLAY_VM_BIN: a directory of programs (underlay's bin/) the tests use,
# put at /underlay/bin and named to them by UNDERLAY_BIN.
if [[ -n ${UNDERLAY_VM_BIN:-} ]]; then
	[[ -d $UNDERLAY_VM_BIN ]] || die "UNDERLAY_VM_BIN=$UNDERLAY_VM_BIN is not a directory"
	mkdir -p "$run/underlay/bin"
	cp -L "$UNDERLAY_VM_BIN"/* "$run/underlay/bin/"
	chmod 755 "$run/underlay/bin"/*
fi
qargs=
for a in ${test_args[@]+"${test_args[@]}"}; do qargs+=" $(sh_quote "$a")"; done

cat >"$run/init" <<EOF
#!/bin/sh
# generated by integration/vm/run.sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /dev/shm
hostname underlay-vm
# ip netns keeps its mounts under /var/run/netns.
[ -e /var/run ] || ln -s /run /var/run
ip link set lo up
result=PASS
while read -r m; do
	insmod /lib/modules/$krel/\$m.ko || { echo "underlay-vm: insmod \$m failed"; result=FAIL; }
done </etc/modules.order
echo "underlay-vm: kernel \$(uname -r), \$(wc -l </etc/modules.order) modules loaded"
set --$qargs
for t in /tests/*; do
	name=\${t##*/}
	echo "underlay-vm: === RUN \$name"
	mkdir -p /tmp/work/\$name
	cd /tmp/work/\$name
	env -i UNDERLAY_PRIVILEGED=1 UNDERLAY_VM=1 UNDERLAY_BIN=/underlay/bin PATH=/bin:/sbin:/usr/bin:/usr/sbin \\
		HOME=/root TMPDIR=/tmp "\$t" "\$@"
	rc=\$?
	cd /
	if [ \$rc -eq 0 ]; then
		echo "underlay-vm: --- \$name: PASS"
	else
		echo "underlay-vm: --- \$name: FAIL (exit \$rc)"
		result=FAIL
	fi
done
echo "RESULT_$nonce: \$result"
poweroff -f
EOF
chmod 755 "$run/init"
cpio_dir "$run" "$work/run.cpio"
cat "$base" "$work/run.cpio" >"$work/initrd"
flock -u 9

# ------------------------------------------------------------------- boot
kernel=$kdir/vmlinux
if [[ $BOOT == bzimage || ! -f $kernel ]]; then
	kernel=$kdir/vmlinuz
fi
bios=()
case ${UNDERLAY_VM_BIOS:-} in
default) ;;
"") [[ -f /usr/share/qemu/qboot.rom ]] && bios=(-bios /usr/share/qemu/qboot.rom) ;;
*) bios=(-bios "$UNDERLAY_VM_BIOS") ;;
esac
append="console=ttyS0 quiet panic=-1 oops=panic rdinit=/init ${UNDERLAY_VM_APPEND:-}"
append+=" i8042.noaux i8042.nokbd i8042.nopnp tsc=reliable no_timer_check"
log=$work/console.log
: >"$log"
# stdout carries only the console (messages go to stderr)
[[ $QUIET == 1 ]] && exec >/dev/null
msg "booting $krel ($(basename "$kernel"), initrd $(($(stat -c %s "$work/initrd") / 1024)) KiB), timeout ${TIMEOUT}s, nonce $nonce"
start=$(date +%s%N)
# shellcheck disable=SC2086 # UNDERLAY_VM_QEMU_ARGS is a word list
qemu-system-x86_64 -accel tcg -m "$MEM" -smp "$SMP" -nographic -nodefaults -no-reboot \
	-monitor none -chardev "stdio,id=con,signal=off,logfile=$log" -serial chardev:con \
	-machine "$MACHINE" -cpu "$CPU" ${UNDERLAY_VM_QEMU_ARGS:-} \
	${bios[@]+"${bios[@]}"} -kernel "$kernel" -initrd "$work/initrd" -append "$append" \
	</dev/null 2>"$work/qemu.err" &
# (qemu writes the console to our stdout: never reopen /dev/stdout for it, as
# that truncates a regular file stdout and overwrites earlier output.)
qpid=$!

now_ms() { local t=${EPOCHREALTIME/[.,]/}; echo $((t / 1000)); }
deadline=$(($(now_ms) + TIMEOUT * 1000))
status=
marker_at=
while :; do
	if ! kill -0 "$qpid" 2>/dev/null; then break; fi
	now=$(now_ms)
	if [[ -z $marker_at ]] && grep -aq "RESULT_$nonce: " "$log"; then marker_at=$now; fi
	# poweroff -f should end qemu at once; do not wait long if it does not.
	if [[ -n $marker_at ]] && ((now - marker_at >= 3000)); then break; fi
	if ((now >= deadline)); then status=timeout; break; fi
	sleep 0.1
done
if kill -0 "$qpid" 2>/dev/null; then kill "$qpid" 2>/dev/null || true; fi
qrc=0
wait "$qpid" 2>/dev/null || qrc=$?
qpid=
elapsed=$((($(date +%s%N) - start) / 1000000))
[[ -n $LOGFILE ]] && cp "$log" "$LOGFILE"

echo
msg "summary ($((elapsed / 1000)).$(printf '%03d' $((elapsed % 1000))) s in the VM, kernel $krel):"
grep -a 'underlay-vm: --- ' "$log" | tr -d '\r' | sed 's/^underlay-vm: --- /  /' >&2 || true
if grep -aq "RESULT_$nonce: PASS" "$log"; then
	msg "PASS"
	exit 0
fi
keep_log=1
if grep -aq "RESULT_$nonce: FAIL" "$log"; then
	msg "FAIL: a test or module load failed in the VM"
	exit 1
fi
for b in "${names[@]}"; do
	grep -aq "=== RUN $b" "$log" && ! grep -aq -- "--- $b: " "$log" && msg "  $b: did not finish"
done
if [[ $status == timeout ]]; then
	msg "FAIL: timeout after ${TIMEOUT}s without a result"
	exit 124
fi
if grep -aq 'Kernel panic' "$log"; then
	msg "FAIL: kernel panic: $(grep -a 'Kernel panic' "$log" | head -n1 | tr -d '\r')"
	exit 3
fi
[[ -s $work/qemu.err ]] && msg "qemu: $(cat "$work/qemu.err")"
msg "FAIL: VM exited (qemu status $qrc) without printing a result"
exit 3
