package lifecycle

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/underlay/underlay/daemon/store"
	tl "github.com/underlay/underlay/integration/testlab"
)

// Bounds of the crash loop: enough hook calls and kills to land in every
// step of attach and detach many times, within about a minute.
const (
	crashWorkers  = 8
	crashMinOK    = 300 // hook calls that succeeded
	crashMinKills = 40
	// Below these the loop proved too little (a very slow machine).
	crashFloorOK    = 100
	crashFloorKills = 20
	crashMaxTime    = 90 * time.Second
	// crashBackoff is how long a worker waits after a failed hook: the
	// daemon is down, and hammering it only slows its restart.
	crashBackoff = 25 * time.Millisecond
)

// crashWorker drives one container through attach/detach cycles the way a
// runtime would: a "keep" worker retries a failed hook on the same
// container; the others give the container up after a failed hook (the
// runtime destroys it) and sometimes let it die without any hook.
type crashWorker struct {
	id       string
	keep     bool
	ann      map[string]string
	f        *fake
	attached bool
}

// SIGKILL underlayd at random moments while eight containers go through
// hundreds of attach/detach cycles on two networks, start it again each
// time, and check that the store matches itself and the kernel: every lease
// has its endpoint and the reverse, no address is held twice, nothing is
// left half-attached, no interface in a live container is unknown to the
// store, endpoints of dead containers are gone, owned parents have
// endpoints; and that the daemon then attaches and detaches normally.
func TestPrivilegedCrashSafety(t *testing.T) {
	require(t)
	const p = "ull3"
	dir := tempDir(t)
	lan := tl.NewLAN(t, p, "10.83.0.1/24")
	u := startUnderlayd(t, filepath.Join(dir, "uld"))
	nets := []string{p + "-a", p + "-b"}
	// Small ranges, so addresses are handed out again and again.
	u.MustCLI(t, "network", "create", "--subnet", "10.83.0.0/24", "--ip-range", "10.83.0.0/27", "-o", "parent="+lan.Uplink, nets[0])
	u.MustCLI(t, "network", "create", "--subnet", "10.84.0.0/24", "--ip-range", "10.84.0.0/27", "-o", "parent="+lan.Uplink, nets[1])
	fs := newFakes(t)

	workers := make([]*crashWorker, crashWorkers)
	for i := range workers {
		w := &crashWorker{id: fmt.Sprintf("%s-w%d", p, i), keep: i%2 == 1}
		switch i % 3 {
		case 0:
			w.ann = map[string]string{"io.underlay.network": nets[0] + "," + nets[1]}
		case 1:
			w.ann = map[string]string{"io.underlay.network": nets[0]}
		default:
			w.ann = map[string]string{"io.underlay.network": nets[1]}
		}
		w.f = fs.mustStart(t, w.id)
		workers[i] = w
	}

	var (
		stop  atomic.Bool
		calls atomic.Int64
		ok    atomic.Int64
		kills atomic.Int64
		// restarting is the time spent starting underlayd again (ns).
		restarting atomic.Int64
		errMu      sync.Mutex
		errs       []string
		wg         sync.WaitGroup
		killWG     sync.WaitGroup
	)
	report := func(format string, a ...any) {
		errMu.Lock()
		errs = append(errs, fmt.Sprintf(format, a...))
		errMu.Unlock()
		stop.Store(true)
	}
	start := time.Now()
	killWG.Add(1)
	go func() {
		defer killWG.Done()
		for !stop.Load() {
			// Let a few hooks through, so the daemon is busy with some and
			// the loop makes progress, then kill it a moment later.
			target := ok.Load() + int64(2+rand.IntN(11))
			for ok.Load() < target && !stop.Load() {
				time.Sleep(2 * time.Millisecond)
			}
			time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond)
			u.Kill()
			kills.Add(1)
			restartStart := time.Now()
			err := u.TryStart()
			restarting.Add(int64(time.Since(restartStart)))
			if err != nil {
				report("restart after kill %d: %v", kills.Load(), err)
				return
			}
		}
	}()
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				succeeded, err := w.step(u, fs)
				if err != nil {
					report("%s: %v", w.id, err)
					return
				}
				calls.Add(1)
				if succeeded {
					ok.Add(1)
				}
				if ok.Load() >= crashMinOK && kills.Load() >= crashMinKills || time.Since(start) > crashMaxTime {
					stop.Store(true)
				}
			}
		}()
	}
	wg.Wait()
	killWG.Wait()
	// The last kill lands while hooks may still be running.
	u.Kill()
	for _, e := range errs {
		t.Error(e)
	}
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d hook calls (%d succeeded, the others failed while underlayd was dead or dying), %d kills, in %v (%v of it restarting underlayd)",
		calls.Load(), ok.Load(), kills.Load(), time.Since(start).Round(time.Millisecond), time.Duration(restarting.Load()).Round(time.Millisecond))
	if ok.Load() < crashFloorOK || kills.Load() < crashFloorKills {
		t.Errorf("only %d successful hook calls and %d kills in %v, want at least %d and %d", ok.Load(), kills.Load(), crashMaxTime, crashFloorOK, crashFloorKills)
	}

	if err := u.TryStart(); err != nil {
		t.Fatal(err)
	}
	log := u.Log()
	t.Logf("underlayd undid %d interrupted attaches and released %d dead endpoints at its starts",
		strings.Count(log, "interrupted attach undone"), strings.Count(log, "releasing dead endpoint"))
	rows := u.mustEndpoints(t)
	if err := u.Stop(); err != nil {
		t.Fatal(err)
	}
	v := readStore(t, u.StateDir, nets...)
	for _, bad := range checkStoreInvariants(v) {
		t.Errorf("store after the last crash: %s", bad)
	}
	if len(rows) != len(v.endpoints) {
		t.Errorf("endpoint ls showed %d endpoints, the store holds %d", len(rows), len(v.endpoints))
	}
	for _, bad := range checkKernel(t, v, workers, false) {
		t.Errorf("kernel vs store after the last crash: %s", bad)
	}
	if t.Failed() {
		return
	}

	// Settle: the daemon works normally on what the crashes left. Every
	// live container is detached and attached again.
	if err := u.TryStart(); err != nil {
		t.Fatal(err)
	}
	for _, w := range workers {
		if out, err := u.hook("poststop", w.f.state("", w.ann)); err != nil {
			t.Errorf("%s: detach after the crashes: %v: %s", w.id, err, out)
		}
		if out, err := u.hook("createRuntime", w.f.state("", w.ann)); err != nil {
			t.Errorf("%s: attach after the crashes: %v: %s", w.id, err, out)
		}
		w.attached = true
	}
	if err := u.Stop(); err != nil {
		t.Fatal(err)
	}
	v = readStore(t, u.StateDir, nets...)
	for _, bad := range checkStoreInvariants(v) {
		t.Errorf("store after settling: %s", bad)
	}
	for _, bad := range checkKernel(t, v, workers, true) {
		t.Errorf("kernel vs store after settling: %s", bad)
	}
}

// step runs one hook call (or lets the container die) and says whether a
// hook succeeded.
func (w *crashWorker) step(u *underlayd, fs *fakes) (bool, error) {
	replace := func() error {
		w.f.Kill()
		f, err := fs.start(w.id)
		if err != nil {
			return err
		}
		w.f, w.attached = f, false
		return nil
	}
	if !w.attached {
		if _, err := u.hook("createRuntime", w.f.state("", w.ann)); err == nil {
			w.attached = true
			return true, nil
		}
		time.Sleep(crashBackoff)
		if !w.keep {
			// runc runs poststop when a createRuntime hook fails, then
			// the container is gone.
			_, _ = u.hook("poststop", w.f.state("", w.ann))
			return false, replace()
		}
		return false, nil
	}
	if !w.keep && rand.IntN(5) == 0 {
		return false, replace() // died, and no hook ever ran
	}
	if _, err := u.hook("poststop", w.f.state("", w.ann)); err == nil {
		w.attached = false
		return true, nil
	}
	time.Sleep(crashBackoff)
	if !w.keep {
		return false, replace()
	}
	return false, nil
}

// checkKernel compares the live containers' interfaces with the store:
// every interface is an endpoint of that container and namespace with the
// same addresses and MAC, no address is on two interfaces, and every
// endpoint belongs to a live container. strict also wants every endpoint's
// interface to exist.
func checkKernel(t *testing.T, v storeView, workers []*crashWorker, strict bool) []string {
	t.Helper()
	var bad []string
	type epRef struct{ id, ifname string }
	byRef := map[epRef]int{}
	for i, ep := range v.endpoints {
		byRef[epRef{ep.ContainerID, ep.IfName}] = i
	}
	live := map[string]*crashWorker{}
	owners := map[uint64][]string{}
	for _, w := range workers {
		if w.f.Alive() {
			live[w.id] = w
			owners[w.f.Inode] = append(owners[w.f.Inode], w.id)
		}
	}
	onWire := map[string]string{}
	for _, w := range workers {
		if !w.f.Alive() {
			continue
		}
		links, err := linksIn(w.f.Pid)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", w.id, err))
			continue
		}
		seen := map[string]bool{}
		for _, l := range links {
			seen[l.Name] = true
			for _, a := range l.Addrs {
				if other, dup := onWire[a]; dup {
					bad = append(bad, fmt.Sprintf("%s is configured on %s and on %s/%s", a, other, w.id, l.Name))
				}
				onWire[a] = w.id + "/" + l.Name
			}
			i, ok := byRef[epRef{w.id, l.Name}]
			if !ok {
				bad = append(bad, fmt.Sprintf("%s has interface %s (%s, %v) that the store does not know", w.id, l.Name, l.MAC, l.Addrs))
				continue
			}
			ep := v.endpoints[i]
			want := append([]string(nil), ep.Addresses...)
			sort.Strings(want)
			if ep.NetnsInode != w.f.Inode {
				bad = append(bad, fmt.Sprintf("%s/%s: the store records namespace %d, the container's is %d", w.id, l.Name, ep.NetnsInode, w.f.Inode))
			}
			if strings.Join(want, ",") != strings.Join(l.Addrs, ",") || !strings.EqualFold(ep.MAC, l.MAC) {
				bad = append(bad, fmt.Sprintf("%s/%s has %v %s, the store says %v %s", w.id, l.Name, l.Addrs, l.MAC, want, ep.MAC))
			}
		}
		if strict {
			for _, ep := range v.endpoints {
				if ep.ContainerID == w.id && !seen[ep.IfName] {
					bad = append(bad, fmt.Sprintf("endpoint %s says %s has %s, which it does not", store.EndpointKey(ep), w.id, ep.IfName))
				}
			}
		}
	}
	for _, ep := range v.endpoints {
		w, ok := live[ep.ContainerID]
		if !ok || w.f.Inode != ep.NetnsInode {
			msg := fmt.Sprintf("endpoint %s (%v) belongs to a dead container", store.EndpointKey(ep), ep.Addresses)
			if ids := owners[ep.NetnsInode]; len(ids) > 0 {
				msg += fmt.Sprintf("; its namespace inode %d was reused by live %v", ep.NetnsInode, ids)
			}
			bad = append(bad, msg)
		}
	}
	sort.Strings(bad)
	return bad
}
