package main

import (
	"fmt"
	"path/filepath"
	"time"
)

// rss starts underlayd on a copy of t, waits for it to settle, and reads
// its resident set (VmRSS) and peak (VmHWM) in MiB. It checks that every
// lease survived the start-up reconcile.
func rss(bin string, t *template, dir string, settle time.Duration) (rssMiB, hwmMiB float64, startup time.Duration, err error) {
	d := newDaemon(bin, dir)
	if err = t.copyTo(d.StateDir); err != nil {
		return
	}
	if startup, err = d.Start(120 * time.Second); err != nil {
		return
	}
	defer d.Stop()
	time.Sleep(settle)
	eps, err := d.Endpoints()
	if err != nil {
		return
	}
	if len(eps) != len(t.Leases) {
		err = fmt.Errorf("underlayd holds %d endpoints after start, want %d (did reconcile release live ones?)", len(eps), len(t.Leases))
		return
	}
	r, err := procStatusKiB(d.Pid(), "VmRSS")
	if err != nil {
		return
	}
	h, err := procStatusKiB(d.Pid(), "VmHWM")
	return float64(r) / 1024, float64(h) / 1024, startup, err
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

func sub(dir string, parts ...string) string { return filepath.Join(append([]string{dir}, parts...)...) }
