package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/daemon/store"
	"github.com/underlay/underlay/ipam"
	"golang.org/x/sys/unix"
)

// The fill networks: a /16 and a /64, as `underlay network create` makes
// them, populated offline through the store package.
const (
	fillNet     = "ulbfill"
	fillSubnet  = "10.210.0.0/16"
	fillGateway = "10.210.0.1"
	fill6Net    = "ulbfill6"
	fill6Subnet = "fdb0:0:0:1::/64"
	fill6Gw     = "fdb0:0:0:1::1"
)

// template is a state directory populated once (on tmpfs, where fsync is
// free) and copied to disk for each run.
type template struct {
	Dir    string
	Net    string
	Leases []netip.Addr
}

// usable16 is every address of the /16 a container can get.
func usable16() []netip.Addr {
	var out []netip.Addr
	p := netip.MustParsePrefix(fillSubnet)
	gw := netip.MustParseAddr(fillGateway)
	for a := p.Addr().Next(); p.Contains(a); a = a.Next() {
		if a != gw && a != netip.MustParseAddr("10.210.255.255") {
			out = append(out, a)
		}
	}
	return out
}

// randomFill picks n addresses of the /16 at random (seeded: the same
// every run), as fragmented as that fill can be.
func randomFill(n int, seed uint64) []netip.Addr {
	all := usable16()
	rng := rand.New(rand.NewPCG(seed, seed))
	rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	return all[:n]
}

// seq6 is the first n addresses the allocator hands out in the /64.
func seq6(n int) []netip.Addr {
	out := make([]netip.Addr, n)
	a := netip.MustParseAddr(fill6Gw)
	for i := range out {
		a = a.Next()
		out[i] = a
	}
	return out
}

func fillEndpoint(net string, i int, a netip.Addr, bits int, ns nsID) api.Endpoint {
	gw := fillGateway
	if a.Is6() {
		gw = fill6Gw
	}
	return api.Endpoint{Network: net, ContainerID: fmt.Sprintf("ulbf-%05d", i), IfName: "eth0",
		MAC:       fmt.Sprintf("02:42:%02x:%02x:%02x:%02x", byte(i>>24), byte(i>>16), byte(i>>8), byte(i)),
		Addresses: []string{netip.PrefixFrom(a, bits).String()}, Gateways: []string{gw},
		NetnsInode: ns.Inode, NetnsCookie: ns.Cookie, Parent: parentInproc, State: "attached", Created: "2020-01-01T00:00:00Z"}
}

// nsID names a network namespace as underlayd records it.
type nsID struct{ Inode, Cookie uint64 }

// makeTemplate creates the network through network.Manager (as underlayd
// would) and writes one endpoint per lease through the store, each
// recording the namespace ns (a live one keeps them alive at restart).
func makeTemplate(dir, net string, leases []netip.Addr, ns nsID) (*template, error) {
	m, ts, closeStore, err := openManager(dir)
	if err != nil {
		return nil, err
	}
	defer closeStore()
	st := ts.Store
	req := api.NetworkCreate{Name: net, Driver: "macvlan", Options: map[string]string{"parent": parentInproc}}
	bits := 16
	if net == fill6Net {
		req.Subnets, req.Gateways, bits = []string{fill6Subnet}, []string{fill6Gw}, 64
	} else {
		req.Subnets, req.Gateways = []string{fillSubnet}, []string{fillGateway}
	}
	if _, err := m.Create(req); err != nil {
		return nil, err
	}
	for i, a := range leases {
		if err := st.PutEndpoint(fillEndpoint(net, i, a, bits, ns)); err != nil {
			return nil, err
		}
	}
	return &template{Dir: dir, Net: net, Leases: leases}, nil
}

// copyTo copies the template's databases (the durable one and the boot's
// endpoint database) into a fresh state dir.
func (t *template) copyTo(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	files, err := filepath.Glob(filepath.Join(t.Dir, "*.db"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("template %s holds no database (%v)", t.Dir, err)
	}
	for _, f := range files {
		if err := copyFile(f, filepath.Join(dir, filepath.Base(f))); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	if err := dst.Sync(); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

// allocResult is one fill level of the in-process allocation benchmark.
type allocResult struct {
	total, alloc []time.Duration
}

// underlayAlloc opens a copy of t on disk, rebuilds the allocator as
// underlayd does at start, and times Allocate plus the commit of the new
// endpoint (store.PutEndpoint: one transaction in the per-boot endpoint
// database, which is not fsynced; see daemon/store/ephemeral.go); the
// lease is released again outside the timing so the fill stays put.
func underlayAlloc(t *template, dir string, n int) (*allocResult, error) {
	if err := t.copyTo(dir); err != nil {
		return nil, err
	}
	st, err := store.Open(dir)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	nets, err := st.Networks()
	if err != nil || len(nets) != 1 {
		return nil, fmt.Errorf("template networks: %v %v", nets, err)
	}
	spec := ipam.Spec{}
	for _, s := range nets[0].Subnets {
		spec.Subnets, spec.Gateways = append(spec.Subnets, s.Subnet), append(spec.Gateways, s.Gateway)
	}
	pools, err := ipam.BuildPools(spec)
	if err != nil {
		return nil, err
	}
	alloc := ipam.NewAllocator(pools)
	leases, err := st.Leases(t.Net)
	if err != nil {
		return nil, err
	}
	for a := range leases {
		if err := alloc.Mark(a); err != nil {
			return nil, err
		}
	}
	if alloc.Count() != len(t.Leases) {
		return nil, fmt.Errorf("template %s: %d leases loaded, want %d", t.Net, alloc.Count(), len(t.Leases))
	}
	fam, bits := 4, 16
	if t.Net == fill6Net {
		fam, bits = 6, 64
	}
	r := &allocResult{}
	for i := 0; i < n; i++ {
		t0 := time.Now()
		addr, _, err := alloc.Allocate(fam)
		ta := time.Since(t0)
		if err != nil {
			return nil, err
		}
		ep := fillEndpoint(t.Net, 900000+i, addr, bits, nsID{Inode: 1})
		err = st.PutEndpoint(ep)
		tt := time.Since(t0)
		if err != nil {
			return nil, err
		}
		r.alloc, r.total = append(r.alloc, ta), append(r.total, tt)
		if err := st.DeleteEndpoint(ep); err != nil {
			return nil, err
		}
		alloc.Release(addr)
	}
	return r, nil
}

// hostLocalDir writes host-local's on-disk state for the same leases:
// one file per address holding "<container id>\r\n<ifname>".
func hostLocalDir(dataDir, net string, leases []netip.Addr) error {
	d := filepath.Join(dataDir, net)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return err
	}
	for i, a := range leases {
		if err := os.WriteFile(filepath.Join(d, a.String()), []byte(fmt.Sprintf("ulbf-%05d\r\neth0", i)), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// hostLocalAlloc execs host-local ADD n times against a data dir holding
// leases; each lease it hands out is removed again outside the timing.
// host-local only exists as a binary, so its figure includes its process
// start (see the floor row).
//
// host-local reads every lease file on each ADD (to find an existing lease
// of the container), so at high fill one ADD takes seconds: it stops after
// budget once it has 5 samples.
func hostLocalAlloc(tmp, dataDir, netnsPath string, v6 bool, leases []netip.Addr, n int, budget time.Duration) ([]time.Duration, error) {
	net := "ulbhl4"
	subnet, gw := fillSubnet, fillGateway
	if v6 {
		net, subnet, gw = "ulbhl6", fill6Subnet, fill6Gw
	}
	if err := hostLocalDir(dataDir, net, leases); err != nil {
		return nil, err
	}
	conf, _ := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": net,
		"ipam": map[string]any{"type": "host-local", "subnet": subnet, "gateway": gw, "dataDir": dataDir}})
	var ds []time.Duration
	start := time.Now()
	for i := 0; i < n && (i < 5 || time.Since(start) < budget); i++ {
		env := []string{basePath, "CNI_COMMAND=ADD", "CNI_CONTAINERID=ulbh-" + strconv.Itoa(i), "CNI_NETNS=" + netnsPath,
			"CNI_IFNAME=eth0", "CNI_PATH=" + cniBin}
		d, out, err := timedExec(tmp, filepath.Join(cniBin, "host-local"), nil, env, conf)
		if err != nil {
			return nil, err
		}
		var res struct {
			IPs []struct {
				Address string `json:"address"`
			} `json:"ips"`
		}
		if err := json.Unmarshal(out, &res); err != nil || len(res.IPs) != 1 {
			return nil, fmt.Errorf("host-local answer %q: %v", out, err)
		}
		p, err := netip.ParsePrefix(res.IPs[0].Address)
		if err != nil {
			return nil, err
		}
		if err := os.Remove(filepath.Join(dataDir, net, p.Addr().String())); err != nil {
			return nil, fmt.Errorf("host-local lease file: %w", err)
		}
		ds = append(ds, d)
	}
	return ds, nil
}

// fsyncFloor times a 4 KiB write plus fdatasync in dir: the least any
// durable commit on that disk costs.
func fsyncFloor(dir string, n int) ([]time.Duration, error) {
	f, err := os.CreateTemp(dir, "fsync-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	page := make([]byte, 4096)
	var ds []time.Duration
	for i := 0; i < n; i++ {
		t0 := time.Now()
		if _, err := f.WriteAt(page, int64(i%64)*4096); err != nil {
			return nil, err
		}
		if err := fdatasync(f); err != nil {
			return nil, err
		}
		ds = append(ds, time.Since(t0))
	}
	return ds, nil
}

func fdatasync(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }
