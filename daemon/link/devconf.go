package link

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// An interface with IPv6 gets ndisc_notify: the kernel sends an
// unsolicited neighbour advertisement for each IPv6 address once the
// address is usable (at once with IFA_F_NODAD), from a workqueue, so that
// switches and neighbours learn the new MAC before any traffic. Its IPv4
// addresses are announced by a gratuitous ARP of underlayd's, sent in the
// background (announce.go), not by arp_notify, which would send it from
// the thread that brings the interface up.
//
// On a network without IPv6, IPv6 is turned off on the interface, as
// Docker does: otherwise a router advertisement on the LAN would give the
// container a SLAAC address and an IPv6 default route the operator never
// asked for.

// devConf is one per-interface sysctl.
type devConf struct{ family, key, value string }

// An interface that must have no IPv6 is created with it off, rather than
// turned off after: writing an interface's disable_ipv6 takes the kernel's
// RTNL lock with a trylock that retries at once, so while another thread
// holds RTNL (a link delete holds it through its RCU waits, 10-30 ms) the
// write spins on a CPU. Measured here: 20 such writes while 40 deletes ran
// took up to 31 ms each and 18-27 ms of CPU in all; writes of the
// namespace's default, which takes no lock, at most 1 ms and no CPU to
// speak of. A new interface copies the default of its namespace, so
// CreateSlave sets it to 1 around the create (withIPv6Off).
const defaultDisableIPv6 = "/proc/sys/net/ipv6/conf/default/disable_ipv6"

// ipv6OffByDefault makes new interfaces of the calling thread's namespace
// start with IPv6 off and returns the value to put back: "" when there is
// none (it was off already, or the kernel has no IPv6).
func ipv6OffByDefault() (string, error) {
	was, err := readSysctl(defaultDisableIPv6)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if was == "1" {
		return "", nil
	}
	if err := writeSysctl(defaultDisableIPv6, "1"); err != nil {
		return "", err
	}
	return was, nil
}

// withIPv6Off runs create, the create of interface name, in the calling
// thread's namespace with the namespace's default disable_ipv6 at 1 if off
// is set, and puts the default back after. A default that cannot be put
// back fails it: an interface create made goes again.
func withIPv6Off(off bool, name string, create func() error) error {
	if !off {
		return create()
	}
	restore, err := ipv6OffByDefault()
	if err != nil {
		return fmt.Errorf("create %s with IPv6 off: %w", name, err)
	}
	err = create()
	if restore == "" {
		return err
	}
	if e := writeSysctl(defaultDisableIPv6, restore); e != nil {
		e = fmt.Errorf("put the namespace's default disable_ipv6=%s back: %w", restore, e)
		if err != nil {
			return fmt.Errorf("%w (and %v)", err, e)
		}
		return e
	}
	return err
}

// devConfFor lists the sysctls an interface gets before it comes up. One
// without IPv6 was created with it off (withIPv6Off).
func devConfFor(s Slave) []devConf {
	if s.DisableIPv6 {
		return nil
	}
	conf := []devConf{{"ipv6", "ndisc_notify", "1"}}
	switch s.IPv6Mode {
	case "dhcpv6":
		// The address comes from DHCPv6, the default route from the
		// router's advertisements; the link-local address is usable at
		// once, so the first SOLICIT need not wait for DAD.
		conf = append(conf, devConf{"ipv6", "accept_dad", "0"}, devConf{"ipv6", "accept_ra", "1"},
			devConf{"ipv6", "autoconf", "0"})
	case "slaac":
		conf = append(conf, devConf{"ipv6", "accept_dad", "0"}, devConf{"ipv6", "accept_ra", "1"},
			devConf{"ipv6", "autoconf", "1"})
	}
	return conf
}

// writeDevConf writes the sysctls of interface name in the calling
// thread's namespace (inside Netns.Do).
func writeDevConf(name string, conf []devConf) error {
	for _, c := range conf {
		err := writeSysctl("/proc/sys/net/"+c.family+"/conf/"+name+"/"+c.key, c.value)
		if err == nil {
			continue
		}
		if c.family == "ipv6" && errors.Is(err, os.ErrNotExist) {
			// The kernel runs without IPv6 (ipv6.disable=1): nothing
			// to turn off, and no IPv6 address could have been added.
			continue
		}
		return fmt.Errorf("set %s.%s=%s on %s: %w", c.family, c.key, c.value, name, err)
	}
	return nil
}

// readSysctl reads path, a file under /proc/sys, without its newline.
func readSysctl(path string) (string, error) {
	fd, err := openProc(path, unix.O_RDONLY)
	if err != nil {
		return "", &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var b [32]byte
	n, err := unix.Read(fd, b[:])
	if err != nil {
		return "", &os.PathError{Op: "read", Path: path, Err: err}
	}
	return strings.TrimSpace(string(b[:n])), nil
}

// writeSysctl writes value to path, a file under /proc/sys (procsys.go
// says through which procfs).
func writeSysctl(path, value string) error {
	fd, err := openProc(path, unix.O_WRONLY)
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, []byte(value)); err != nil {
		return &os.PathError{Op: "write", Path: path, Err: err}
	}
	return nil
}
