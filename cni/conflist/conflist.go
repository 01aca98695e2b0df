// Package conflist writes the CNI network configuration list of an
// underlay network: what nerdctl, podman's CNI backend, containerd's CRI
// and Multus load to attach containers to it through underlay-cni.
package conflist

import (
	"encoding/json"

	"github.com/underlay/underlay/daemon/api"
)

// Version is the cniVersion of the lists written: 1.0.0, as nerdctl
// writes its own, which every runtime of today parses (podman 4's libcni
// fails on a 1.1.0 result). underlay-cni speaks 1.1.0 too: a list that says
// so gets STATUS and GC from runtimes whose libcni is 1.2 or newer.
const Version = "1.0.0"

// FileName is the list's file name in a CNI conf dir. It has no
// "nerdctl-" prefix and the list no nerdctlID: nerdctl lists the network
// as one managed outside it, and refuses to remove it, so that only
// `underlay network rm` removes both.
func FileName(network string) string { return "underlay-" + network + ".conflist" }

type plugin struct {
	Type         string          `json:"type"`
	Network      string          `json:"network"`
	Socket       string          `json:"socket,omitempty"`
	Capabilities map[string]bool `json:"capabilities"`
	IPAM         *ipam           `json:"ipam,omitempty"`
}

// ipam is informational, in host-local's shape, which nerdctl network
// inspect shows; underlay-cni ignores it (underlayd owns the addresses).
type ipam struct {
	Ranges [][]ipRange `json:"ranges"`
}

type ipRange struct {
	Subnet  string `json:"subnet"`
	Gateway string `json:"gateway,omitempty"`
	IPRange string `json:"ipRange,omitempty"`
}

type list struct {
	CNIVersion string   `json:"cniVersion"`
	Name       string   `json:"name"`
	Plugins    []plugin `json:"plugins"`
}

// Build returns n's list, indented as nerdctl writes its own. socket is
// underlayd's socket when it is not the default one.
func Build(n api.Network, socket string) []byte {
	if socket == api.DefaultSocket {
		socket = ""
	}
	p := plugin{Type: "underlay", Network: n.Name, Socket: socket,
		Capabilities: map[string]bool{"ips": true, "mac": true}}
	if len(n.Subnets) > 0 {
		p.IPAM = &ipam{}
		for _, s := range n.Subnets {
			p.IPAM.Ranges = append(p.IPAM.Ranges, []ipRange{{Subnet: s.Subnet, Gateway: s.Gateway, IPRange: s.IPRange}})
		}
	}
	b, _ := json.MarshalIndent(list{CNIVersion: Version, Name: n.Name, Plugins: []plugin{p}}, "", "  ")
	return append(b, '\n')
}
