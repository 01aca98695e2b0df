package main

import (
	"strconv"
	"strings"

	"github.com/underlay/underlay/daemon/api"
)

// result is an ADD's result in the spec's format: the container's
// interface, its addresses with their gateways, the default routes and
// the DNS a DHCP lease gave. encode writes it without encoding/json (see
// daemon/api/wire_cni.go); the tags say what it writes.
type result struct {
	CNIVersion string     `json:"cniVersion"`
	Interfaces []iface    `json:"interfaces"`
	IPs        []ipConfig `json:"ips,omitempty"`
	Routes     []route    `json:"routes,omitempty"`
	DNS        dns        `json:"dns"`
}

type iface struct {
	Name    string `json:"name"`
	MAC     string `json:"mac"`
	Sandbox string `json:"sandbox"`
}

type ipConfig struct {
	// Version is "4" or "6", for the 0.x results that have it.
	Version   string `json:"version,omitempty"`
	Address   string `json:"address"`
	Gateway   string `json:"gateway,omitempty"`
	Interface int    `json:"interface"`
}

type route struct {
	Dst string `json:"dst"`
	GW  string `json:"gw"`
}

type dns struct {
	Nameservers []string `json:"nameservers,omitempty"`
	Domain      string   `json:"domain,omitempty"`
}

// newResult builds the result of an ADD in the config's version.
func newResult(version string, ep api.CNIAdded, netns string) result {
	if version == "" {
		version = specVersion
	}
	res := result{CNIVersion: version, Interfaces: []iface{{Name: ep.IfName, MAC: ep.MAC, Sandbox: netns}}}
	for _, a := range ep.Addresses {
		addr, _, err := api.ParsePrefix(a)
		if err != nil {
			continue
		}
		ip := ipConfig{Address: a}
		if strings.HasPrefix(version, "0.") {
			ip.Version = "6"
			if addr.Is4() {
				ip.Version = "4"
			}
		}
		for _, g := range ep.Gateways {
			if gw, err := api.ParseAddr(g); err == nil && gw.Is4() == addr.Is4() {
				ip.Gateway = g
				dst := "0.0.0.0/0"
				if gw.Is6() {
					dst = "::/0"
				}
				res.Routes = append(res.Routes, route{Dst: dst, GW: g})
			}
		}
		res.IPs = append(res.IPs, ip)
	}
	if d := ep.DHCP; d != nil {
		res.DNS = dns{Nameservers: d.DNS, Domain: d.Domain}
	}
	return res
}

// encode returns r as json.Marshal would.
func (r result) encode() []byte {
	b := api.AppendJSONString(append(make([]byte, 0, 512), `{"cniVersion":`...), r.CNIVersion)
	b = append(b, `,"interfaces":`...)
	if r.Interfaces == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, f := range r.Interfaces {
			if i > 0 {
				b = append(b, ',')
			}
			b = api.AppendJSONString(append(b, `{"name":`...), f.Name)
			b = api.AppendJSONString(append(b, `,"mac":`...), f.MAC)
			b = api.AppendJSONString(append(b, `,"sandbox":`...), f.Sandbox)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if len(r.IPs) > 0 {
		b = append(b, `,"ips":[`...)
		for i, ip := range r.IPs {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '{')
			if ip.Version != "" {
				b = api.AppendJSONString(append(b, `"version":`...), ip.Version)
				b = append(b, ',')
			}
			b = api.AppendJSONString(append(b, `"address":`...), ip.Address)
			if ip.Gateway != "" {
				b = api.AppendJSONString(append(b, `,"gateway":`...), ip.Gateway)
			}
			b = strconv.AppendInt(append(b, `,"interface":`...), int64(ip.Interface), 10)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if len(r.Routes) > 0 {
		b = append(b, `,"routes":[`...)
		for i, rt := range r.Routes {
			if i > 0 {
				b = append(b, ',')
			}
			b = api.AppendJSONString(append(b, `{"dst":`...), rt.Dst)
			b = api.AppendJSONString(append(b, `,"gw":`...), rt.GW)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, `,"dns":{`...)
	sep := ""
	if len(r.DNS.Nameservers) > 0 {
		b = appendStrings(append(b, `"nameservers":`...), r.DNS.Nameservers)
		sep = ","
	}
	if r.DNS.Domain != "" {
		b = api.AppendJSONString(append(b, sep+`"domain":`...), r.DNS.Domain)
	}
	return append(b, "}}"...)
}

// errorResult is the spec's error object.
type errorResult struct {
	CNIVersion string `json:"cniVersion"`
	Code       int    `json:"code"`
	Msg        string `json:"msg"`
	Details    string `json:"details,omitempty"`
}

func (e errorResult) encode() []byte {
	b := api.AppendJSONString([]byte(`{"cniVersion":`), e.CNIVersion)
	b = strconv.AppendInt(append(b, `,"code":`...), int64(e.Code), 10)
	b = api.AppendJSONString(append(b, `,"msg":`...), e.Msg)
	if e.Details != "" {
		b = api.AppendJSONString(append(b, `,"details":`...), e.Details)
	}
	return append(b, '}')
}

// versionResult answers VERSION.
type versionResult struct {
	CNIVersion        string   `json:"cniVersion"`
	SupportedVersions []string `json:"supportedVersions"`
}

func (v versionResult) encode() []byte {
	b := api.AppendJSONString([]byte(`{"cniVersion":`), v.CNIVersion)
	b = appendStrings(append(b, `,"supportedVersions":`...), v.SupportedVersions)
	return append(b, '}')
}

// appendStrings writes a string array, null when nil as json.Marshal does.
func appendStrings(b []byte, ss []string) []byte {
	if ss == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = api.AppendJSONString(b, s)
	}
	return append(b, ']')
}
