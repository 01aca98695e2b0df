package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"time"
)

// rss starts underlayd on a copy of t, waits for it to settle, and reads
// its resident set (VmRSS) and peak (VmHWM) in MiB. It checks that every
// lease survived the start-up reconcile.
func rss(bin string, t *template, dir string, settle time.Duration) (m memInfo, startup time.Duration, err error) {
	d := newDaemon(bin, dir)
	if err = t.copyTo(d.StateDir); err != nil {
		return
	}
	if startup, err = d.Start(120 * time.Second); err != nil {
		return
	}
	defer d.Stop()
	time.Sleep(settle)
	// Idle first: an `endpoint ls` of 65,000 endpoints builds a large
	// answer, and the garbage it leaves is not the resting footprint.
	if err = readMem(d.Pid(), &m); err != nil {
		return
	}
	eps, err := d.Endpoints()
	if err != nil {
		return
	}
	if len(eps) != len(t.Leases) {
		err = fmt.Errorf("underlayd holds %d endpoints after start, want %d (did reconcile release live ones?)", len(eps), len(t.Leases))
		return
	}
	var after memInfo
	if err = readMem(d.Pid(), &after); err != nil {
		return
	}
	m.AfterList = after.RSS
	files, _ := filepath.Glob(filepath.Join(d.StateDir, "*.db"))
	for _, f := range files {
		if fi, e := os.Stat(f); e == nil {
			m.DB += float64(fi.Size()) / (1 << 20)
		}
	}
	return m, startup, nil
}

func readMem(pid int, m *memInfo) error {
	for _, f := range []struct {
		name string
		v    *float64
	}{{"VmRSS", &m.RSS}, {"VmHWM", &m.HWM}, {"RssAnon", &m.Anon}, {"RssFile", &m.File}} {
		kib, err := procStatusKiB(pid, f.name)
		if err != nil {
			return err
		}
		*f.v = float64(kib) / 1024
	}
	return nil
}

// memInfo is underlayd's memory in MiB: resident (and its peak), split
// into anonymous memory (the Go heap, stacks) and file pages (the bbolt
// file, which underlayd maps and reads whole at start), the file size, and
// the resident set after one `endpoint ls`.
type memInfo struct{ RSS, HWM, Anon, File, DB, AfterList float64 }

// inprocHeap loads a copy of t into network.Manager, as underlayd does at
// start, and reports the live Go heap it holds, with a heap profile.
func inprocHeap(t *template, dir, profile string) (liveMiB float64, err error) {
	if err = t.copyTo(dir); err != nil {
		return
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	m, _, closeStore, err := openManager(dir)
	if err != nil {
		return
	}
	defer closeStore()
	if _, err = m.Reconcile(); err != nil {
		return
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if err = os.MkdirAll(filepath.Dir(profile), 0o755); err != nil {
		return
	}
	f, err := os.Create(profile)
	if err != nil {
		return
	}
	defer f.Close()
	if err = pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		return
	}
	runtime.KeepAlive(m)
	return float64(after.HeapAlloc-min(after.HeapAlloc, before.HeapAlloc)) / (1 << 20), nil
}

// restarts times n restarts of underlayd on a copy of t whose endpoints are
// all alive: exec to first answered request, reconcile included.
func restarts(bin string, t *template, dir string, n int) ([]time.Duration, error) {
	d := newDaemon(bin, dir)
	if err := t.copyTo(d.StateDir); err != nil {
		return nil, err
	}
	var ds []time.Duration
	for i := 0; i < n; i++ {
		dt, err := d.Start(120 * time.Second)
		if err != nil {
			return nil, err
		}
		eps, err := d.Endpoints()
		d.Stop()
		if err != nil {
			return nil, err
		}
		if len(eps) != len(t.Leases) {
			return nil, fmt.Errorf("restart %d: %d endpoints, want %d", i, len(eps), len(t.Leases))
		}
		ds = append(ds, dt)
	}
	return ds, nil
}

// deadRestart starts underlayd on a copy of t whose endpoints' namespaces
// are all gone (a reboot): it must release all of them before it serves.
func deadRestart(bin string, t *template, dir string, timeout time.Duration) (time.Duration, error) {
	d := newDaemon(bin, dir)
	if err := t.copyTo(d.StateDir); err != nil {
		return 0, err
	}
	dt, err := d.Start(timeout)
	if err != nil {
		return 0, err
	}
	defer d.Stop()
	eps, err := d.Endpoints()
	if err != nil {
		return 0, err
	}
	if len(eps) != 0 {
		return 0, fmt.Errorf("after a reboot restart %d endpoints remain, want 0", len(eps))
	}
	return dt, nil
}

func sub(dir string, parts ...string) string {
	return filepath.Join(append([]string{dir}, parts...)...)
}
