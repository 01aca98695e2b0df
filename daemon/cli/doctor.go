package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/daemon/api/apiclient"
	"github.com/underlay/underlay/daemon/link"
)

func doctorCommand() *cli.Command {
	return &cli.Command{
		Name:      "doctor",
		Usage:     "check the kernel's link types, a parent, and the daemon",
		ArgsUsage: "[PARENT...]",
		Action:    doctor,
	}
}

func doctor(c *cli.Context) error {
	bad := 0
	w := tabwriter.NewWriter(os.Stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(w, "CHECK\tRESULT")
	sup := link.Supported()
	needs := linkTypesNeeded(c)
	for _, kind := range []string{"macvlan", "ipvlan", "vlan", "dummy"} {
		res := "supported"
		if err := sup[kind]; err != nil && needs[kind] {
			res = "MISSING: " + err.Error()
			bad++
		} else if err != nil {
			// A macvlan-only host is a working host: say what it cannot
			// do, without failing the check.
			res = "missing, and no network needs it yet: " + err.Error()
		}
		fmt.Fprintf(w, "kernel %s\t%s\n", kind, res)
	}
	for _, p := range c.Args().Slice() {
		in, err := link.Lookup(p)
		switch {
		case err != nil:
			fmt.Fprintf(w, "parent %s\tMISSING: %v\n", p, err)
			bad++
		case !in.Up:
			fmt.Fprintf(w, "parent %s\tDOWN (%s, mtu %d)\n", p, in.Kind, in.MTU)
			bad++
		default:
			fmt.Fprintf(w, "parent %s\tup (%s, mtu %d)\n", p, in.Kind, in.MTU)
		}
	}
	var pong map[string]string
	if err := apiclient.Do(client(c), "GET", "/ping", nil, &pong); err != nil {
		fmt.Fprintf(w, "daemon %s\tNOT ANSWERING: %v\n", c.String("socket"), err)
		bad++
	} else {
		fmt.Fprintf(w, "daemon %s\tanswers\n", c.String("socket"))
		bad += doctorShims(c, w)
	}
	w.Flush()
	if bad > 0 {
		return fmt.Errorf("%d check(s) failed", bad)
	}
	return nil
}

// linkTypesNeeded are the link types the daemon's networks need: macvlan
// always (the default driver), and ipvlan, vlan (an 802.1q parent
// underlayd makes) and dummy (an internal network) where a network has
// them. A daemon that does not answer needs them all, as far as anyone
// can tell.
func linkTypesNeeded(c *cli.Context) map[string]bool {
	var nets []api.Network
	if err := apiclient.Do(client(c), "GET", "/networks", nil, &nets); err != nil {
		return map[string]bool{"macvlan": true, "ipvlan": true, "vlan": true, "dummy": true}
	}
	needs := map[string]bool{"macvlan": true}
	for _, n := range nets {
		needs[n.Driver] = true
		if n.Internal {
			needs["dummy"] = true
		}
		if _, vid, ok := strings.Cut(n.Parent, "."); ok && vid != "" && strings.Trim(vid, "0123456789") == "" {
			needs["vlan"] = true
		}
	}
	return needs
}

// doctorShims reports the host shim of every network that has one, as the
// daemon sees it (in its own namespace), and returns how many are not up.
func doctorShims(c *cli.Context, w *tabwriter.Writer) int {
	var nets []api.Network
	if err := apiclient.Do(client(c), "GET", "/networks", nil, &nets); err != nil {
		fmt.Fprintf(w, "networks\tNOT LISTED: %v\n", err)
		return 1
	}
	bad := 0
	for _, n := range nets {
		if len(n.HostAddresses) == 0 {
			continue
		}
		var full api.Network
		if err := networkDo(c, "GET", n.Name, "", nil, &full); err != nil || full.Shim == nil {
			fmt.Fprintf(w, "shim of %s\tUNKNOWN: %v\n", n.Name, err)
			bad++
			continue
		}
		s := full.Shim
		switch {
		case !s.Exists && full.ParentInfo != nil && !full.ParentInfo.Exists:
			// An owned parent that comes with the first endpoint.
			fmt.Fprintf(w, "shim %s (%s)\tnone yet: parent %s is not there\n", s.Name, n.Name, full.Parent)
		case !s.Exists:
			fmt.Fprintf(w, "shim %s (%s)\tMISSING (underlayd restores it on the next link event or start)\n", s.Name, n.Name)
			bad++
		case !s.Up:
			fmt.Fprintf(w, "shim %s (%s)\tDOWN (is parent %s up?)\n", s.Name, n.Name, full.Parent)
			bad++
		default:
			fmt.Fprintf(w, "shim %s (%s)\tup, %v\n", s.Name, n.Name, s.Addresses)
		}
	}
	return bad
}

var _ = errors.New
