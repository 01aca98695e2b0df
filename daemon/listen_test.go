package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// listen replaces a stale socket, and refuses anything else at its path,
// leaving it as it was: a mistyped --socket deleted the file it named.
func TestListenRemovesOnlyAStaleSocket(t *testing.T) {
	dir := t.TempDir()
	file, sub := filepath.Join(dir, "file"), filepath.Join(dir, "dir")
	os.WriteFile(file, []byte("keep"), 0o644)
	os.Mkdir(sub, 0o755)
	for _, c := range []struct{ path, kind string }{{file, "regular file"}, {sub, "directory"}} {
		_, err := listen(c.path, -1)
		if err == nil || !strings.Contains(err.Error(), "a "+c.kind+" is there, not a socket") {
			t.Errorf("listen on a %s: %v", c.kind, err)
		}
	}
	if b, _ := os.ReadFile(file); string(b) != "keep" {
		t.Errorf("the file at --socket was changed: %q", b)
	}
	if fi, err := os.Stat(sub); err != nil || !fi.IsDir() {
		t.Errorf("the directory at --socket was removed: %v", err)
	}

	stale := filepath.Join(dir, "stale.sock")
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: stale}); err != nil {
		t.Fatal(err)
	}
	syscall.Close(fd) // bound, never listening: what a crashed daemon leaves
	ln, err := listen(stale, -1)
	if err != nil {
		t.Fatalf("listen over a stale socket: %v", err)
	}
	defer ln.Close()
	if c, err := net.Dial("unix", stale); err != nil {
		t.Fatalf("new socket does not answer: %v", err)
	} else {
		c.Close()
	}
}
