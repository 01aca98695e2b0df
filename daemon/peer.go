package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

type peerKey struct{}

// withPeer records the peer's credentials (SO_PEERCRED) on the connection.
func withPeer(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return ctx
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return ctx
	}
	var cred *unix.Ucred
	_ = raw.Control(func(fd uintptr) {
		cred, _ = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if cred == nil {
		return ctx
	}
	return context.WithValue(ctx, peerKey{}, *cred)
}

// peerAuthorizer lets root, and members of the socket group, change state.
func peerAuthorizer(gid int) func(r *http.Request) error {
	return func(r *http.Request) error {
		cred, ok := r.Context().Value(peerKey{}).(unix.Ucred)
		if !ok {
			return errors.New("permission denied: unknown peer")
		}
		if cred.Uid == 0 || gid >= 0 && (int(cred.Gid) == gid || inGroup(int(cred.Pid), gid)) {
			return nil
		}
		return fmt.Errorf("permission denied: uid %d is not root and not in the socket group", cred.Uid)
	}
}

// inGroup reads the supplementary groups of pid.
func inGroup(pid, gid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Groups:"); ok {
			for _, g := range strings.Fields(rest) {
				if g == strconv.Itoa(gid) {
					return true
				}
			}
		}
	}
	return false
}
