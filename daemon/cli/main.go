// Command underlay is underlay's CLI. Its flags are Docker's
// (`docker network create -d macvlan ...`), so the commands NetOps already
// use carry over. Every command that changes or lists state asks underlayd
// over its socket; doctor also reads the host's links and kernel support
// itself, so that it can explain a daemon that is down or a missing parent.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/underlay/underlay/cni/conflist"
	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/daemon/api/apiclient"
)

func main() {
	app := newApp()
	if err := app.Run(flagsFirst(app, os.Args)); err != nil {
		fmt.Fprintln(os.Stderr, "underlay:", oneLine(err))
		os.Exit(1)
	}
}

func newApp() *cli.App {
	app := &cli.App{
		Name:                      "underlay",
		Usage:                     "macvlan, ipvlan and 802.1q networks for containers, without Docker",
		DisableSliceFlagSeparator: true,
		HideHelpCommand:           true,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "socket", Value: api.DefaultSocket, EnvVars: []string{"UNDERLAY_SOCKET"}, Usage: "underlayd's unix socket"},
		},
		Commands: []*cli.Command{networkCommand(), endpointCommand(), hostCommand(), eventsCommand(), doctorCommand()},
	}
	app.OnUsageError = usageError("underlay")
	app.Action = unknownCommand("underlay", app.Commands)
	strict("underlay", app.Commands)
	return app
}

// strict makes every command's mistakes one line, as the rest of the CLI's
// errors are, instead of the line followed by the whole help: a bad flag
// names itself and where the help is, and an unknown subcommand lists the
// known ones.
func strict(path string, cmds []*cli.Command) {
	for _, c := range cmds {
		p := path + " " + c.Name
		c.OnUsageError = usageError(p)
		if len(c.Subcommands) > 0 {
			if c.Action == nil {
				c.Action = unknownCommand(p, c.Subcommands)
			}
			strict(p, c.Subcommands)
		}
	}
}

func usageError(path string) cli.OnUsageErrorFunc {
	return func(_ *cli.Context, err error, _ bool) error {
		return fmt.Errorf("%s%v (see '%s --help')", subject(path), err, path)
	}
}

// subject is the command an error is about, after main's "underlay: ".
func subject(path string) string {
	if _, sub, ok := strings.Cut(path, " "); ok {
		return sub + ": "
	}
	return ""
}

// unknownCommand is the action of a command run with no subcommand it
// knows: its help when given none, an error naming the word otherwise.
func unknownCommand(path string, cmds []*cli.Command) cli.ActionFunc {
	return func(c *cli.Context) error {
		if c.NArg() == 0 && c.Command.Name == "" {
			return cli.ShowAppHelp(c)
		}
		if c.NArg() == 0 {
			return cli.ShowSubcommandHelp(c)
		}
		var names []string
		for _, sc := range cmds {
			names = append(names, sc.Name)
		}
		return fmt.Errorf("%sunknown command %q: want %s", subject(path), c.Args().First(), strings.Join(names, ", "))
	}
}

// printJSON prints v as indented JSON, as network inspect does; an empty
// list is [].
func printJSON[T any](v []T) error {
	if v == nil {
		v = []T{}
	}
	b, err := json.MarshalIndent(v, "", "    ")
	if err != nil {
		return err
	}
	fmt.Println(string(b))
	return nil
}

func valueOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

func client(c *cli.Context) *api.Client {
	return &api.Client{Socket: c.String("socket")}
}

func networkCommand() *cli.Command {
	return &cli.Command{
		Name:  "network",
		Usage: "manage networks",
		Subcommands: []*cli.Command{
			{
				Name:      "create",
				Usage:     "create a network",
				ArgsUsage: "NAME",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "driver", Aliases: []string{"d"}, Value: "macvlan", Usage: "macvlan or ipvlan"},
					&cli.StringSliceFlag{Name: "subnet", Usage: "subnet in CIDR form (repeatable)"},
					&cli.StringSliceFlag{Name: "gateway", Usage: "gateway of the subnet that contains it (repeatable)"},
					&cli.StringSliceFlag{Name: "ip-range", Usage: "allocate from this range of the subnet that contains it (repeatable)"},
					&cli.StringSliceFlag{Name: "aux-address", Usage: "NAME=IP never handed out (repeatable)"},
					&cli.StringFlag{Name: "ipam-driver", Value: "default", Usage: "where addresses come from: default (this host's allocator) or dhcp (the LAN's DHCP server; --subnet optional)"},
					&cli.StringFlag{Name: "scope", Value: "local", Usage: "local (this host) or global (every host of underlayd's --store shares it and its addresses)"},
					&cli.StringSliceFlag{Name: "label", Usage: "KEY[=VALUE] metadata on the network (repeatable)"},
					&cli.StringFlag{Name: "cni-conf-dir", Usage: "also write the network's CNI conflist there, for nerdctl and CRI (e.g. /etc/cni/net.d); removed with the network"},
					&cli.StringSliceFlag{Name: "host-address", Usage: "give the host a shim on the parent with this address, so it reaches its containers (one per family)"},
					&cli.BoolFlag{Name: "ipv6", Usage: "the network has IPv6 (needs an IPv6 --subnet)"},
					&cli.BoolFlag{Name: "ipv4", Value: true, Usage: "--ipv4=false: an IPv6-only network, as in Docker 28 (what one whose subnets are all IPv6 is anyway); refuses an IPv4 --subnet"},
					&cli.BoolFlag{Name: "internal", Usage: "no way out: a dummy parent, no default route"},
					&cli.StringSliceFlag{Name: "opt", Aliases: []string{"o"}, Usage: "driver option KEY=VALUE: parent, macvlan_mode, ipvlan_mode, ipvlan_flag, mtu, dns, dhcp_timeout, ipv6_mode"},
				},
				Action: networkCreate,
			},
			{Name: "ls", Aliases: []string{"list"}, Usage: "list networks", Action: networkList,
				Flags: []cli.Flag{
					&cli.StringSliceFlag{Name: "filter", Aliases: []string{"f"}, Usage: filterUsage},
					&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "only the names"},
					&cli.StringFlag{Name: "format", Usage: formatUsage("Name", "Driver")},
				}},
			{Name: "prune", Usage: "remove every network without endpoints", Action: networkPrune,
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "do not ask first"},
					&cli.StringSliceFlag{Name: "filter", Usage: filterUsage},
				}},
			{Name: "inspect", Usage: "show networks as JSON", ArgsUsage: "NAME|ID...", Action: networkInspect},
			connectCommand(),
			disconnectCommand(),
			{Name: "cni-config", Usage: "print the network's CNI conflist (for nerdctl, CRI, Multus)", ArgsUsage: "NAME", Action: networkCNIConfig},
			{Name: "rm", Aliases: []string{"remove"}, Usage: "remove networks", ArgsUsage: "NAME|ID...", Action: networkRemove},
		},
	}
}

// ipv6Only checks --ipv4=false: IPv6 subnets only, at least one, and no
// DHCP (whose leases are IPv4 first).
func ipv6Only(req api.NetworkCreate) error {
	if req.IPAMDriver == "dhcp" {
		return errors.New("--ipv4=false with --ipam-driver dhcp: a DHCP network's first address is an IPv4 lease")
	}
	v6 := false
	for _, s := range req.Subnets {
		if p, err := netip.ParsePrefix(s); err == nil && p.Addr().Is4() {
			return fmt.Errorf("--ipv4=false with the IPv4 --subnet %s", s)
		}
		v6 = true // a malformed one is the daemon's to name
	}
	if !v6 {
		return errors.New("--ipv4=false needs an IPv6 --subnet")
	}
	return nil
}

func networkCreate(c *cli.Context) error {
	if c.NArg() != 1 {
		return errors.New(`"network create" needs exactly one NAME`)
	}
	req := api.NetworkCreate{
		Name: c.Args().First(), Driver: c.String("driver"),
		Subnets: c.StringSlice("subnet"), Gateways: c.StringSlice("gateway"),
		IPRanges: c.StringSlice("ip-range"), Aux: c.StringSlice("aux-address"),
		IPv6: c.Bool("ipv6"), Internal: c.Bool("internal"), Options: map[string]string{},
		IPAMDriver: c.String("ipam-driver"), Scope: c.String("scope"),
		HostAddresses: c.StringSlice("host-address"),
	}
	if dir := c.String("cni-conf-dir"); dir != "" {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return fmt.Errorf("--cni-conf-dir %s: %w", dir, err)
		}
		req.CNIConfDir, req.CNISocket = abs, cniSocket(c)
	}
	if !c.Bool("ipv4") {
		if err := ipv6Only(req); err != nil {
			return err
		}
	}
	for _, l := range c.StringSlice("label") {
		k, v, _ := strings.Cut(l, "=")
		if k == "" {
			return fmt.Errorf("--label %q: want KEY[=VALUE]", l)
		}
		if req.Labels == nil {
			req.Labels = map[string]string{}
		}
		req.Labels[k] = v
	}
	for _, o := range c.StringSlice("opt") {
		k, v, ok := strings.Cut(o, "=")
		if !ok || k == "" {
			return fmt.Errorf("-o %q: want KEY=VALUE", o)
		}
		if _, dup := req.Options[k]; dup {
			return fmt.Errorf("-o %s given twice", k)
		}
		req.Options[k] = v
	}
	var n api.Network
	if err := apiclient.Do(client(c), "POST", "/networks", req, &n); err != nil {
		return err
	}
	fmt.Println(n.ID)
	return nil
}

func networkList(c *cli.Context) error {
	nets, err := listNetworks(c)
	if err != nil {
		return err
	}
	if done, err := printList(c, nets, func(n api.Network) string { return n.Name },
		func(n api.Network) networkRow { return networkRow{n} }); done {
		return err
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 8, 3, ' ', 0)
	fmt.Fprintln(w, "NETWORK ID\tNAME\tDRIVER\tSCOPE\tMODE\tPARENT\tSUBNETS\tIN USE\tFREE")
	for _, n := range nets {
		var subs []string
		for _, s := range n.Subnets {
			subs = append(subs, s.Subnet)
		}
		row := networkRow{n}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", n.ID[:12], n.Name, n.Driver, valueOr(n.Scope, "local"), n.Mode, n.Parent, strings.Join(subs, ","), row.InUse(), row.Free())
	}
	return w.Flush()
}

func networkInspect(c *cli.Context) error {
	if c.NArg() == 0 {
		return errors.New(`"network inspect" needs at least one NAME`)
	}
	var out []api.Network
	var errs []string
	for _, name := range c.Args().Slice() {
		var n api.Network
		if err := networkDo(c, "GET", name, "", nil, &n); err != nil {
			errs = append(errs, oneLine(err))
			continue
		}
		out = append(out, n)
	}
	if len(out) > 0 {
		_ = printJSON(out)
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// cniSocket is the socket underlay-cni should use: this command's, made
// absolute.
func cniSocket(c *cli.Context) string {
	s := c.String("socket")
	if s == "" {
		return ""
	}
	if abs, err := filepath.Abs(s); err == nil {
		return abs
	}
	return s
}

func networkCNIConfig(c *cli.Context) error {
	if c.NArg() != 1 {
		return errors.New(`"network cni-config" needs exactly one NAME`)
	}
	var n api.Network
	if err := networkDo(c, "GET", c.Args().First(), "", nil, &n); err != nil {
		return err
	}
	_, err := os.Stdout.Write(conflist.Build(n, cniSocket(c)))
	return err
}

func networkRemove(c *cli.Context) error {
	if c.NArg() == 0 {
		return errors.New(`"network rm" needs at least one NAME`)
	}
	var errs []string
	for _, name := range c.Args().Slice() {
		if err := networkDo(c, "DELETE", name, "", nil, nil); err != nil {
			errs = append(errs, oneLine(err))
			continue
		}
		fmt.Println(name)
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

func endpointCommand() *cli.Command {
	return &cli.Command{
		Name:  "endpoint",
		Usage: "containers attached to networks",
		Subcommands: []*cli.Command{
			{Name: "ls", Aliases: []string{"list"}, Usage: "list attached containers", Action: endpointList,
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "format", Usage: formatUsage("Network", "IfName")},
					&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "only the containers (namespace/id), one per endpoint"},
				}},
			{Name: "prune", Usage: "release endpoints whose container is gone", Action: endpointPrune},
		},
	}
}

func hostCommand() *cli.Command {
	return &cli.Command{
		Name:  "host",
		Usage: "the hosts that share the global networks (underlayd --store)",
		Subcommands: []*cli.Command{
			{Name: "ls", Aliases: []string{"list"}, Usage: "list the hosts: up or gone, and the addresses each holds", Action: hostList},
			{Name: "reclaim", Usage: "free a gone host's addresses that nobody answers for on the wire", ArgsUsage: "NAME", Action: hostReclaim},
		},
	}
}

func hostList(c *cli.Context) error {
	var hs []api.Host
	if err := apiclient.Do(client(c), "GET", "/hosts", nil, &hs); err != nil {
		return err
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 8, 3, ' ', 0)
	fmt.Fprintln(w, "HOST\tSTATE\tLAST SEEN\tENDPOINTS")
	for _, h := range hs {
		state := "gone"
		if h.Alive {
			state = "up"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\n", h.Name, state, valueOr(h.LastSeen, "-"), h.Endpoints)
	}
	return w.Flush()
}

func hostReclaim(c *cli.Context) error {
	if c.NArg() != 1 {
		return errors.New(`"host reclaim" needs exactly one host NAME`)
	}
	var r api.ReclaimResponse
	if err := apiclient.Do(client(c), "POST", "/hosts/"+url.PathEscape(c.Args().First())+"/reclaim", nil, &r); err != nil {
		return err
	}
	fmt.Printf("host %s: %d address(es) freed, %d kept (still answering on the wire, or not probed)\n", r.Host, r.Freed, r.Kept)
	return nil
}

func endpointList(c *cli.Context) error {
	var eps []api.Endpoint
	if err := apiclient.Do(client(c), "GET", "/endpoints", nil, &eps); err != nil {
		return err
	}
	sort.SliceStable(eps, func(i, j int) bool { return eps[i].Network < eps[j].Network })
	if done, err := printList(c, eps, api.Endpoint.Container,
		func(ep api.Endpoint) api.Endpoint { return ep }); done {
		return err
	}
	// Endpoints on DHCP networks add what their leases say.
	leased := false
	for _, ep := range eps {
		leased = leased || ep.DHCP != nil
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 8, 3, ' ', 0)
	head := "NETWORK\tCONTAINER\tIFNAME\tADDRESSES\tMAC\tSTATE"
	if leased {
		head += "\tLEASE\tDNS\tDOMAIN"
	}
	fmt.Fprintln(w, head)
	for _, ep := range eps {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s", ep.Network, ep.Container(), ep.IfName, strings.Join(ep.Addresses, ","), ep.MAC, ep.State)
		if leased {
			fmt.Fprintf(w, "\t%s\t%s\t%s", leaseColumn(ep.DHCP), dnsColumn(ep.DHCP), domainColumn(ep.DHCP))
		}
		fmt.Fprintln(w)
	}
	return w.Flush()
}

func endpointPrune(c *cli.Context) error {
	var r api.PruneResponse
	if err := apiclient.Do(client(c), "POST", "/prune", nil, &r); err != nil {
		return err
	}
	fmt.Printf("released %d endpoint(s)\n", r.Released)
	return nil
}

// leaseColumn tells a DHCP lease's state: until when it is held, or why
// it was lost.
func leaseColumn(d *api.DHCPLease) string {
	switch {
	case d == nil:
		return "-"
	case d.State == "bound":
		return "until " + d.Expires
	}
	return d.State + ": " + d.Reason
}

func dnsColumn(d *api.DHCPLease) string {
	if d == nil || len(d.DNS) == 0 {
		return "-"
	}
	return strings.Join(d.DNS, ",")
}

func domainColumn(d *api.DHCPLease) string {
	if d == nil || d.Domain == "" {
		return "-"
	}
	return d.Domain
}

// networkDo calls the API on network name (and an action on it). The
// name is the user's text: it is checked first, and escaped, so that
// "a?force=1" or ".." reach underlayd as a name, or not at all, and never
// as another URL.
func networkDo(c *cli.Context, method, name, action string, body, out any) error {
	if err := api.ValidName(name); err != nil {
		return err
	}
	path := "/networks/" + url.PathEscape(name)
	if action != "" {
		path += "/" + action
	}
	return apiclient.Do(client(c), method, path, body, out)
}
