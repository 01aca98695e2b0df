// Package runtime holds underlay's real-container tests: a private containerd
// and a private podman start busybox containers that ask for an underlay
// network by annotation, and the tests check from inside the containers what
// the user would see (eth0's address, the default route, pings to each other
// and to the router) and that removing a container releases its address.
//
// The "LAN" is a network namespace holding one end of a veth with the
// router's address; the other end, in the host namespace, is the macvlan
// parent. Nothing touches the host's real interfaces, and everything the
// tests create is named with the prefix "ulrt" and removed by t.Cleanup.
//
// The tests need root, containerd, runc, podman, busybox-static, iproute2 and
// the four binaries of `make build`. They skip unless UNDERLAY_PRIVILEGED=1;
// with it set, anything missing is a failure, never a skip:
//
//	make build
//	sudo UNDERLAY_PRIVILEGED=1 go test -v -count=1 ./integration/runtime/
//
// The binaries are taken from ../../bin, or from $UNDERLAY_BIN. Addresses are
// released by the poststop hook, and underlayd also follows the test
// containerd's events (--containerd-address; UNDERLAY_RUNTIME_EVENTS=0 turns
// that off).
// integration/scripts/selftest.sh checks the lab itself (image import,
// private containerd and podman, the LAN) without underlay's binaries.
package runtime
