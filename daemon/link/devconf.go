package link

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Announcements come from the kernel, not from a socket of underlayd's.
// With arp_notify the kernel sends a gratuitous ARP for each IPv4 address
// when the interface comes up; with ndisc_notify it sends an unsolicited
// neighbour advertisement for each IPv6 address once the address is usable
// (at once with IFA_F_NODAD). Switches and neighbours learn the new MAC
// before any traffic, as they would from a packet socket of our own, but
// no socket is closed on the attach's path: closing an AF_PACKET socket
// waits for an RCU grace period (synchronize_net), 10-30 ms here.
//
// On a network without IPv6, IPv6 is turned off on the interface, as
// Docker does: otherwise a router advertisement on the LAN would give the
// container a SLAAC address and an IPv6 default route the operator never
// asked for.

// devConf is one per-interface sysctl.
type devConf struct{ family, key, value string }

// devConfFor lists the sysctls an interface gets before it comes up.
func devConfFor(s Slave) []devConf {
	conf := []devConf{{"ipv4", "arp_notify", "1"}}
	if s.DisableIPv6 {
		return append(conf, devConf{"ipv6", "disable_ipv6", "1"})
	}
	conf = append(conf, devConf{"ipv6", "ndisc_notify", "1"})
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

// writeSysctl writes value to path, a file under /proc/sys (procsys.go
// says through which procfs).
func writeSysctl(path, value string) error {
	fd, err := openProc(path)
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, []byte(value)); err != nil {
		return &os.PathError{Op: "write", Path: path, Err: err}
	}
	return nil
}
