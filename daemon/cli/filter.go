package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/daemon/api/apiclient"
)

const filterUsage = "KEY=VALUE: label=KEY, label=KEY=VALUE, driver=, name= (part of), scope=, id= (prefix); repeatable, all must hold"

// filter is one --filter of network ls and prune, as Docker's.
type filter struct{ key, value string }

func parseFilters(fs []string) ([]filter, error) {
	var out []filter
	for _, f := range fs {
		k, v, ok := strings.Cut(f, "=")
		switch {
		case !ok || v == "":
			return nil, fmt.Errorf("--filter %q: want KEY=VALUE", f)
		case k != "label" && k != "driver" && k != "name" && k != "scope" && k != "id":
			return nil, fmt.Errorf("--filter %q: unknown filter %s (label, driver, name, scope, id)", f, k)
		}
		out = append(out, filter{k, v})
	}
	return out, nil
}

// matches reports whether n passes every filter.
func matches(n api.Network, fs []filter) bool {
	for _, f := range fs {
		var ok bool
		switch f.key {
		case "label":
			k, v, withValue := strings.Cut(f.value, "=")
			have, set := n.Labels[k]
			ok = set && (!withValue || have == v)
		case "driver":
			ok = n.Driver == f.value
		case "name":
			ok = strings.Contains(n.Name, f.value)
		case "scope":
			ok = valueOr(n.Scope, "local") == f.value
		case "id":
			ok = strings.HasPrefix(n.ID, f.value)
		}
		if !ok {
			return false
		}
	}
	return true
}

// listNetworks asks for the networks and keeps those --filter lets by.
func listNetworks(c *cli.Context) ([]api.Network, error) {
	fs, err := parseFilters(c.StringSlice("filter"))
	if err != nil {
		return nil, err
	}
	var nets []api.Network
	if err := apiclient.Do(client(c), "GET", "/networks", nil, &nets); err != nil {
		return nil, err
	}
	var out []api.Network
	for _, n := range nets {
		if matches(n, fs) {
			out = append(out, n)
		}
	}
	return out, nil
}

// networkPrune removes the local networks (those --filter lets by) that
// have no endpoint, after asking, as docker network prune does. Global
// networks are left alone: having no endpoint here says nothing of the
// other hosts, and removing one removes it for all of them.
func networkPrune(c *cli.Context) error {
	if c.NArg() > 0 {
		return errors.New(`"network prune" takes no arguments`)
	}
	nets, err := listNetworks(c)
	if err != nil {
		return err
	}
	if !c.Bool("force") {
		fmt.Print("WARNING! This will remove all local networks without endpoints (global ones are left: network rm removes those).\nAre you sure you want to continue? [y/N] ")
		answer, _ := bufio.NewReader(os.Stdin).ReadString('\n')
		if a := strings.TrimSpace(strings.ToLower(answer)); a != "y" && a != "yes" {
			return nil
		}
	}
	var removed, errs []string
	for _, n := range nets {
		if n.Scope == "global" {
			continue
		}
		var full api.Network
		if err := networkDo(c, "GET", n.Name, "", nil, &full); err != nil || len(full.Endpoints) > 0 {
			continue
		}
		if err := networkDo(c, "DELETE", n.Name, "", nil, nil); err != nil {
			errs = append(errs, oneLine(err))
			continue
		}
		removed = append(removed, n.Name)
	}
	if len(removed) > 0 {
		fmt.Println("Deleted Networks:")
		for _, name := range removed {
			fmt.Println(name)
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}
