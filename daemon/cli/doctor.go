package main

import (
	"errors"
	"fmt"
	"os"
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
	for _, kind := range []string{"macvlan", "ipvlan", "vlan", "dummy"} {
		res := "supported"
		if err := sup[kind]; err != nil {
			res = "MISSING: " + err.Error()
			bad++
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
	}
	w.Flush()
	if bad > 0 {
		return fmt.Errorf("%d check(s) failed", bad)
	}
	return nil
}

var _ = errors.New
var _ = api.Version
