// Package lifecycle holds underlay's lifecycle and failure tests: what a
// user sees when containers outlive or die before their hooks, when
// containerd or underlayd restart or crash, when the state directory or the
// socket misbehave, and who may talk to the socket.
//
// They run the real binaries of `make build` (underlayd, underlay,
// underlay-hook) against veth "LANs" in throwaway network namespaces, fake
// containers (processes in fresh network namespaces) and real containers in a
// private containerd: Debian's 1.6, and a 2.x built from source (through
// the Go module proxy) into /var/cache/underlay-ctrd2/<version> the first
// time it is needed; UNDERLAY_CTRD2_CACHE overrides the cache directory.
// Everything they create is named with the prefix "ull" (links,
// network namespaces, containerd namespaces, users and groups) and removed
// at cleanup, even on failure. Nothing touches the host's real interfaces.
//
// The tests need root and skip unless UNDERLAY_PRIVILEGED=1; with it set,
// anything missing is a failure, never a skip:
//
//	make build
//	sudo UNDERLAY_PRIVILEGED=1 go test -v -count=1 -timeout 20m ./integration/lifecycle/
//
// The first run also builds containerd 2.x (about two minutes). The crash
// test kills underlayd at random moments; the kill-point tests kill it (or
// the container) the moment the container's interface appears, so that
// the worst moments are hit on every run, not by chance.
package lifecycle
