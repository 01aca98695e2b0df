// Package nerdctl proves README's nerdctl instructions against real
// software: nerdctl v2 drives a private containerd 2.x, and
//
//	nerdctl run -d --runtime .../underlay-runc --network none \
//	    --annotation io.underlay.network=NET [--annotation io.underlay.ip=IP] IMAGE sleep 3600
//
// gives the container an eth0 on a macvlan network with the address and a
// default route via the LAN's router; containers reach each other and the
// router; `underlay endpoint ls` names them "<namespace>/<container id>";
// `nerdctl rm -f` gives the addresses back (the poststop hook that
// underlay-runc adds, and underlayd following containerd's events), so a
// static address can be taken again at once. nerdctl always adds its own
// createRuntime and poststop hooks (`nerdctl internal oci-hook`); ours run
// beside them, and the tests check both are in the bundle and both work.
//
// TestPrivilegedNerdctlREADME is the README flow with both release paths
// on, as a user runs it, plus a taken static address (the container does
// not start), a container without the annotation (left alone) and nerdctl
// restart. TestPrivilegedNerdctlPoststop has underlayd follow no events, so
// only the poststop hook can release (nerdctl rm -f, and nerdctl start of a
// stopped container, whose old task is deleted first).
// TestPrivilegedNerdctlEvents makes the poststop hook unable to reach
// underlayd, so only containerd's events can release, and nerdctl rm -f
// must still succeed. TestPrivilegedNerdctlRestartLateEvent delays
// containerd's events to underlayd by 2s (a proxy on that connection) and
// restarts a container: the old task's /tasks/delete arrives after the new
// task attached, and must not detach it.
//
// Nothing touches the host's defaults: containerd runs with a private root,
// state, socket and config (version 3, CRI disabled); nerdctl gets
// --address, --namespace ulnd, --data-root, --cni-path, --cni-netconfpath,
// --hosts-dir, --cgroup-manager cgroupfs and an empty $NERDCTL_TOML, all in
// the test's temp directory. The image is a busybox-static docker-archive
// loaded with `nerdctl load -i`. The LAN is a veth whose far end holds the
// router in its own network namespace. Links and namespaces start with
// "ulnd", the containerd namespace is "ulnd"; t.Cleanup removes all of it,
// and only what the test started, even on failure.
//
// containerd 2.x and nerdctl are built from source through the Go module
// proxy the first time (about two minutes each) into caches that later runs
// reuse: /var/cache/underlay-ctrd2/<version> (UNDERLAY_CTRD2_CACHE, shared
// with integration/lifecycle) and /var/cache/underlay-nerdctl/<version>
// (UNDERLAY_NERDCTL_CACHE). nerdctl cannot be had with `go install
// ...@version`: its go.mod replaces the nested module mod/tigron by a
// directory that the module zip leaves out, and go install refuses a module
// with replace directives. So the tests `go mod download` the module, copy
// it, drop cmd/nerdctl/helpers/testing_linux.go (test helpers, the only
// file of the binary that needs tigron) and `go build ./cmd/nerdctl`.
//
// The tests need root and skip unless UNDERLAY_PRIVILEGED=1; with it set,
// anything missing is a failure, never a skip:
//
//	make build
//	sudo UNDERLAY_PRIVILEGED=1 go test -v -count=1 -timeout 20m ./integration/nerdctl/
//
// The binaries are taken from ../../bin, or from $UNDERLAY_BIN.
package nerdctl
