package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// The DHCP stage: one dnsmasq (--no-ping, so that neither contender waits
// for its ping check) serves two LANs in the lab netns, one behind
// underlayd's --ipam-driver dhcp network, one behind CNI macvlan with the
// dhcp IPAM plugin and its daemon. Attaches and detaches are interleaved,
// as in the latency stage.
var (
	parentDHCPUnderlay = "ulbpe"
	parentDHCPCNI      = "ulbpf"
)

func setupDHCPLab() error {
	for i, p := range []string{parentDHCPUnderlay, parentDHCPCNI} {
		q := peerOf(p)
		for _, args := range [][]string{
			{"link", "add", p, "type", "veth", "peer", "name", q},
			{"link", "set", q, "netns", labNS},
			{"-n", labNS, "addr", "add", fmt.Sprintf("10.%d.0.1/16", 205+i), "dev", q},
			{"-n", labNS, "link", "set", q, "up"},
			{"link", "set", p, "up"},
		} {
			if _, err := run("ip", args...); err != nil {
				return err
			}
		}
	}
	return nil
}

func teardownDHCPLab() {
	for _, p := range []string{parentDHCPUnderlay, parentDHCPCNI} {
		_ = exec.Command("ip", "link", "del", p).Run()
	}
}

// dhcpStage runs the stage; without dnsmasq it leaves a note.
func dhcpStage(c *config, rep *Report) error {
	if _, err := exec.LookPath("dnsmasq"); err != nil {
		rep.Notes = append(rep.Notes, "DHCP stage skipped: dnsmasq not installed")
		return nil
	}
	teardownDHCPLab()
	if err := setupDHCPLab(); err != nil {
		return err
	}
	defer teardownDHCPLab()
	dir := sub(c.work, "dhcp")
	srv := exec.Command("ip", "netns", "exec", labNS, "dnsmasq", "--keep-in-foreground", "--no-daemon", "--port=0",
		"--interface="+peerOf(parentDHCPUnderlay), "--interface="+peerOf(parentDHCPCNI), "--bind-interfaces",
		"--no-ping", "--no-resolv", "--no-hosts", "--conf-file=/dev/null", "--user=root",
		"--dhcp-leasefile="+filepath.Join(dir, "leases"), "--pid-file="+filepath.Join(dir, "pid"),
		"--dhcp-range=10.205.0.10,10.205.255.200,255.255.0.0,1h", "--dhcp-option=tag:"+peerOf(parentDHCPUnderlay)+",3,10.205.0.1",
		"--dhcp-range=10.206.0.10,10.206.255.200,255.255.0.0,1h", "--dhcp-option=tag:"+peerOf(parentDHCPCNI)+",3,10.206.0.1")
	if err := startTracked(srv); err != nil {
		return fmt.Errorf("start dnsmasq: %w", err)
	}
	defer started.kill(srv)

	sock := filepath.Join(dir, "cni-dhcp.sock")
	// -broadcast: the anchor at its fastest (its replies need no ARP).
	cniDaemon := exec.Command(filepath.Join(cniBin, "dhcp"), "daemon", "-socketpath", sock, "-broadcast")
	if err := startTracked(cniDaemon); err != nil {
		return fmt.Errorf("start the CNI dhcp daemon: %w", err)
	}
	defer started.kill(cniDaemon)
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(end) {
			return fmt.Errorf("the CNI dhcp daemon did not open %s", sock)
		}
	}

	d := newDaemon(c.bin, sub(c.work, "uddhcp"))
	if _, err := d.Start(30 * time.Second); err != nil {
		return err
	}
	defer d.Stop()
	if out, err := d.CLI("network", "create", "-d", "macvlan", "--ipam-driver", "dhcp", "-o", "parent="+parentDHCPUnderlay, "ulbdhcp"); err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	tmp := sub(c.work, "tmp")
	u := underlayOn(newHookRunner(tmp, c.bin, d, "ulbdhcp"), "ulbdhcp", "10.205.")
	cni := cniDHCPContender(tmp, sock)
	// CNI's dhcp takes about 2 s an attach here: a quarter of the other
	// stages' count keeps the stage near a minute.
	n := max(c.n/8, 10)
	logf("dhcp: %d attaches each, underlay --ipam-driver dhcp and CNI macvlan + dhcp on one dnsmasq, interleaved", n)
	times, err := sequential([]*contender{u, cni}, n, 0)
	if err != nil {
		return fmt.Errorf("%w\nunderlayd log:\n%s", err, d.Tail())
	}
	rep.add(durations("dhcp", "CNI macvlan + dhcp ADD (dnsmasq)", times[1].attach))
	rep.add(durations("dhcp", "CNI macvlan + dhcp DEL (dnsmasq)", times[1].detach))
	rep.add(durations("dhcp", "underlay hook createRuntime, DHCP network (dnsmasq)", times[0].attach)).Note = "dnsmasq --no-ping for both"
	rep.add(durations("dhcp", "underlay hook poststop, DHCP network (netns alive)", times[0].detach)).Note = "the DHCPRELEASE goes out after the answer"
	rep.compare("underlay hook createRuntime, DHCP network (dnsmasq)", "CNI macvlan + dhcp ADD (dnsmasq)")
	rep.compare("underlay hook poststop, DHCP network (netns alive)", "CNI macvlan + dhcp DEL (dnsmasq)")
	// What each left on the server: a detach that does not release leaves
	// the address taken until the lease runs out.
	b, _ := os.ReadFile(filepath.Join(dir, "leases"))
	left := map[string]int{}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 3 {
			left[strings.Join(strings.Split(f[2], ".")[:2], ".")+"."]++
		}
	}
	rep.Notes = append(rep.Notes, fmt.Sprintf("DHCP stage: leases left on dnsmasq after every detach: underlay %d, CNI dhcp %d",
		left["10.205."], left["10.206."]))
	return nil
}

// cniDHCPContender runs CNI macvlan with the dhcp IPAM plugin, which asks
// the CNI dhcp daemon at sock to lease through the container's interface.
func cniDHCPContender(tmp, sock string) *contender {
	conf, _ := json.Marshal(map[string]any{
		"cniVersion": "1.0.0", "name": "ulbcnidhcp", "type": "macvlan", "master": parentDHCPCNI, "mode": "bridge",
		"ipam": map[string]any{"type": "dhcp", "daemonSocketPath": sock},
	})
	do := cniMacvlan(tmp, conf)
	return &contender{
		Name: "CNI-dhcp", Subnet: "10.206.",
		Attach: func(c *container, _ int) (time.Duration, error) { return do("ADD", c) },
		Detach: func(c *container, _ int) (time.Duration, error) { return do("DEL", c) },
	}
}
