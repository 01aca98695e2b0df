package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// A concurrent batch's execs start parked and are released at one moment.
// Forked from the bench one after another, they would start about 1 ms
// apart here (Go forks one child at a time), so how many of 50 overlapped
// depended on how far apart their starts fell: each exec's own median was
// 5.7 ms (nothing overlapping) or 69 ms for one build within one run. So
// each child is first the bench itself, run as gateArg: it says it is
// parked, waits for the release, then execs the contender's binary in
// place (no fork), with the contender's arguments, environment, stdin and
// output. Its time runs from the release to its exit, as for a runtime
// that started 50 containers at once.

// gateArg, as the first argument, makes ulbench a parked child.
const gateArg = "__ulbench_gate"

// Parked children read the release on fd 3 and report on fd 4.
const gateReleaseFD, gateReadyFD = 3, 4

// gateChild is a parked child's whole life: argv is the contender's
// binary and its arguments.
func gateChild(argv []string) {
	_, _ = syscall.Write(gateReadyFD, []byte{1})
	_ = syscall.Close(gateReadyFD)
	var b [1]byte
	for {
		n, err := syscall.Read(gateReleaseFD, b[:])
		if n == 0 && err != syscall.EINTR {
			break // EOF: released (or the bench is gone)
		}
	}
	_ = syscall.Close(gateReleaseFD)
	err := syscall.Exec(argv[0], argv, os.Environ())
	fmt.Fprintf(os.Stderr, "ulbench gate: exec %s: %v\n", argv[0], err)
	os.Exit(127)
}

// execGate parks a batch's execs and releases them together.
type execGate struct {
	self              string
	release, releaseW *os.File
	ready, readyW     *os.File
	released          chan struct{} // closed once t0 is set
	t0                time.Time
}

func newExecGate() (*execGate, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	g := &execGate{self: self, released: make(chan struct{})}
	if g.release, g.releaseW, err = os.Pipe(); err != nil {
		return nil, err
	}
	if g.ready, g.readyW, err = os.Pipe(); err != nil {
		g.release.Close()
		g.releaseW.Close()
		return nil, err
	}
	return g, nil
}

// open waits until n children are parked (or failed to start), then
// releases them all. A child that never parks ends the wait after
// timeout; the others are released anyway, so that none is left behind.
func (g *execGate) open(n int, timeout time.Duration) error {
	got := make(chan error, 1)
	go func() {
		_, err := io.ReadFull(g.ready, make([]byte, n))
		got <- err
	}()
	var err error
	select {
	case err = <-got:
	case <-time.After(timeout):
		err = fmt.Errorf("only some of %d execs parked within %s", n, timeout)
	}
	g.t0 = time.Now()
	close(g.released)
	g.releaseW.Close()
	return err
}

func (g *execGate) close() {
	g.release.Close()
	g.ready.Close()
	g.readyW.Close()
	g.releaseW.Close() // already closed by open, unless it never ran
}

// exec runs path as timedExec does, parked until the release, and returns
// its time from the release to its exit.
func (g *execGate) exec(tmp, path string, args, env []string, stdin []byte) (time.Duration, []byte, error) {
	in, err := stdinFile(tmp, stdin)
	if err != nil {
		g.readyW.Write([]byte{0}) // counted, so that the others are released
		return 0, nil, err
	}
	defer in.Close()
	out, err := stdinFile(tmp, nil)
	if err != nil {
		g.readyW.Write([]byte{0})
		return 0, nil, err
	}
	defer out.Close()
	cmd := exec.Command(g.self, append([]string{gateArg, path}, args...)...)
	cmd.Env, cmd.Stdin, cmd.Stdout, cmd.Stderr = env, in, out, out
	cmd.ExtraFiles = []*os.File{g.release, g.readyW} // fds 3 and 4
	if err := cmd.Start(); err != nil {
		g.readyW.Write([]byte{0})
		return 0, nil, err
	}
	err = cmd.Wait()
	<-g.released
	wall := time.Since(g.t0)
	_, _ = out.Seek(0, 0)
	b, _ := io.ReadAll(out)
	if err != nil { // a failed exec of path says so in b ("ulbench gate: exec ...")
		return wall, b, fmt.Errorf("%s %s: %w: %s", path, strings.Join(args, " "), err, strings.TrimSpace(string(b)))
	}
	return wall, b, nil
}

// exec runs an op's binary: timed from its fork, or, in a concurrent
// batch, parked and timed from the batch's release.
func (c *container) exec(tmp, path string, args, env []string, stdin []byte) (time.Duration, []byte, error) {
	if c.gate != nil {
		return c.gate.exec(tmp, path, args, env, stdin)
	}
	return timedExec(tmp, path, args, env, stdin)
}
