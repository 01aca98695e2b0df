package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/underlay/underlay/daemon/api"
)

// config is the network configuration on stdin (one plugin of a
// conflist, as the runtime hands it over).
type config struct{ api.CNIConfig }

func (c config) network() string {
	if c.Network != "" {
		return c.Network
	}
	return c.Name
}

func (c config) socket(env func(string) string) string {
	if c.Socket != "" {
		return c.Socket
	}
	return env("UNDERLAY_SOCKET")
}

func readConfig(r io.Reader) (config, error) {
	var c config
	b, err := io.ReadAll(io.LimitReader(r, 1<<20))
	if err != nil {
		return c, &cniError{Code: 5, Msg: fmt.Sprintf("read the network configuration: %v", err)}
	}
	if c.CNIConfig, err = api.DecodeCNIConfig(b); err != nil {
		return c, &cniError{Code: 6, Msg: fmt.Sprintf("malformed network configuration on stdin: %v", err)}
	}
	if c.CNIVersion != "" && !slices.Contains(supported, c.CNIVersion) {
		return c, &cniError{Code: 1, Msg: fmt.Sprintf("cniVersion %s: underlay-cni speaks %s", c.CNIVersion, strings.Join(supported, ", "))}
	}
	if c.network() == "" {
		return c, &cniError{Code: 7, Msg: `the network configuration names no network: set "network" (or "name") to an underlay network`}
	}
	if err := api.ValidName(c.network()); err != nil {
		return c, &cniError{Code: 7, Msg: fmt.Sprintf("network %q: %v", c.network(), err)}
	}
	return c, nil
}

// request builds the daemon's request from the environment and the
// configuration: a static address from CNI_ARGS IP= (nerdctl's --ip), the
// "ips" capability or args (nerdctl's --ip6, Kubernetes' ips), a MAC from
// CNI_ARGS MAC= or the "mac" capability.
func (c config) request(env func(string) string, needNetns bool) (api.CNIRequest, error) {
	req := api.CNIRequest{ContainerID: env("CNI_CONTAINERID"), Netns: env("CNI_NETNS"), IfName: env("CNI_IFNAME"),
		Network: c.network()}
	if req.ContainerID == "" {
		return req, &cniError{Code: 4, Msg: "CNI_CONTAINERID is not set"}
	}
	if needNetns && req.Netns == "" {
		return req, &cniError{Code: 4, Msg: "CNI_NETNS is not set"}
	}
	if req.IfName == "" {
		req.IfName = "eth0"
	}
	args, err := parseArgs(env("CNI_ARGS"))
	if err != nil {
		return req, err
	}
	ips := append(append([]string{}, c.RuntimeConfig.IPs...), c.Args.CNI.IPs...)
	if v := args["IP"]; v != "" {
		ips = append(ips, strings.Split(v, ",")...)
	}
	for _, s := range ips {
		s = strings.TrimSpace(s)
		a, err := api.ParseAddr(s)
		if err != nil {
			var perr error
			if a, _, perr = api.ParsePrefix(s); perr != nil {
				return req, &cniError{Code: 7, Msg: fmt.Sprintf("network %s: static address %q is not an IP address", c.network(), s)}
			}
		}
		slot := &req.IP
		if a.Is6() && !a.Is4In6() {
			slot = &req.IP6
		}
		if *slot != "" && *slot != a.Unmap().String() {
			return req, &cniError{Code: 7, Msg: fmt.Sprintf("network %s: two static addresses of one family (%s and %s)", c.network(), *slot, a)}
		}
		*slot = a.Unmap().String()
	}
	req.Hostname = args["NERDCTL_CNI_DHCP_HOSTNAME"]
	if pod := args["K8S_POD_NAME"]; pod != "" {
		req.Name = pod
		if ns := args["K8S_POD_NAMESPACE"]; ns != "" {
			req.Name = ns + "." + pod
		}
	}
	req.MAC = args["MAC"]
	if c.RuntimeConfig.MAC != "" {
		req.MAC = c.RuntimeConfig.MAC
	}
	return req, nil
}

// parseArgs reads CNI_ARGS, K=V pairs joined by ';'. A key underlay does
// not know is an error unless IgnoreUnknown is true, as the convention
// has it; Kubernetes' K8S_* keys are always allowed.
func parseArgs(s string) (map[string]string, error) {
	out := map[string]string{}
	if s == "" {
		return out, nil
	}
	for _, kv := range strings.Split(s, ";") {
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, &cniError{Code: 4, Msg: fmt.Sprintf("CNI_ARGS: %q is not KEY=VALUE", kv)}
		}
		out[k] = v
	}
	ignore := strings.EqualFold(out["IgnoreUnknown"], "1") || strings.EqualFold(out["IgnoreUnknown"], "true")
	for k := range out {
		switch {
		case k == "IP" || k == "MAC" || k == "IgnoreUnknown" || strings.HasPrefix(k, "K8S_"):
		case !ignore:
			return nil, &cniError{Code: 4, Msg: fmt.Sprintf("CNI_ARGS: unknown key %s (underlay takes IP and MAC; set IgnoreUnknown=1 to pass others)", k)}
		}
	}
	return out, nil
}
