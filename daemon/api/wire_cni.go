package api

import "strconv"

// The JSON underlay-cni reads and writes, by the rules of wire.go: the
// plugin runs at every pod or container start, as the hook does, and
// encoding/json's first use (building its codecs by reflection) cost it
// about 0.4 ms of each ADD here.

// CNIConfig is the network configuration a runtime hands underlay-cni on
// stdin (one plugin of a conflist): the fields of it the plugin uses.
type CNIConfig struct {
	CNIVersion string `json:"cniVersion"`
	Name       string `json:"name"`
	Type       string `json:"type"`
	// Network is underlay's network; empty means the same as Name.
	Network string `json:"network"`
	// Socket is underlayd's socket; empty means UNDERLAY_SOCKET, else the
	// default.
	Socket        string `json:"socket"`
	RuntimeConfig struct {
		IPs []string `json:"ips"`
		MAC string   `json:"mac"`
	} `json:"runtimeConfig"`
	Args struct {
		CNI struct {
			IPs []string `json:"ips"`
		} `json:"cni"`
	} `json:"args"`
	ValidAttachments []CNIValidAttachment `json:"cni.dev/valid-attachments"`
}

// CNIValidAttachment is one entry of a GC's cni.dev/valid-attachments.
type CNIValidAttachment struct {
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifname"`
}

// DecodeCNIConfig parses a network configuration; unknown fields are
// skipped.
func DecodeCNIConfig(b []byte) (CNIConfig, error) {
	var c CNIConfig
	err := decodeObject(b, func(d *decoder, key string) error {
		switch foldName(key) {
		case "CNIVERSION":
			return d.stringField(&c.CNIVersion, "cniVersion")
		case "NAME":
			return d.stringField(&c.Name, "name")
		case "TYPE":
			return d.stringField(&c.Type, "type")
		case "NETWORK":
			return d.stringField(&c.Network, "network")
		case "SOCKET":
			return d.stringField(&c.Socket, "socket")
		case "RUNTIMECONFIG":
			rc := &c.RuntimeConfig
			return d.structField("runtimeConfig", func(d *decoder, key string) error {
				switch foldName(key) {
				case "IPS":
					return d.stringSliceField(&rc.IPs, "runtimeConfig.ips")
				case "MAC":
					return d.stringField(&rc.MAC, "runtimeConfig.mac")
				}
				return d.skip()
			})
		case "ARGS":
			return d.structField("args", func(d *decoder, key string) error {
				if foldName(key) != "CNI" {
					return d.skip()
				}
				return d.structField("args.cni", func(d *decoder, key string) error {
					if foldName(key) == "IPS" {
						return d.stringSliceField(&c.Args.CNI.IPs, "args.cni.ips")
					}
					return d.skip()
				})
			})
		case "CNI.DEV/VALID-ATTACHMENTS":
			const name = "cni.dev/valid-attachments"
			return sliceField(d, &c.ValidAttachments, name, func(d *decoder, a *CNIValidAttachment) error {
				return d.structField(name+"[]", func(d *decoder, key string) error {
					switch foldName(key) {
					case "CONTAINERID":
						return d.stringField(&a.ContainerID, name+"[].containerID")
					case "IFNAME":
						return d.stringField(&a.IfName, name+"[].ifname")
					}
					return d.skip()
				})
			})
		}
		return d.skip()
	})
	return c, err
}

// CNIAdded is what a CNI result reports of the endpoint a CNI ADD made:
// those fields of the Endpoint underlayd answers with.
type CNIAdded struct {
	IfName    string   `json:"ifname"`
	MAC       string   `json:"mac"`
	Addresses []string `json:"addresses"`
	Gateways  []string `json:"gateways"`
	// DHCP holds what a DHCP network's lease says of DNS.
	DHCP *CNIAddedDNS `json:"dhcp"`
}

// CNIAddedDNS is the DNS a DHCP lease gave.
type CNIAddedDNS struct {
	DNS    []string `json:"dns"`
	Domain string   `json:"domain"`
}

// DecodeCNIAdded reads the answer to a CNI ADD (an Endpoint), skipping
// what a CNI result does not report.
func DecodeCNIAdded(b []byte) (CNIAdded, error) {
	var a CNIAdded
	err := decodeObject(b, func(d *decoder, key string) error {
		switch foldName(key) {
		case "IFNAME":
			return d.stringField(&a.IfName, "ifname")
		case "MAC":
			return d.stringField(&a.MAC, "mac")
		case "ADDRESSES":
			return d.stringSliceField(&a.Addresses, "addresses")
		case "GATEWAYS":
			return d.stringSliceField(&a.Gateways, "gateways")
		case "DHCP":
			if d.peek() == 'n' {
				a.DHCP = nil
				return d.literal("null")
			}
			if d.peek() == '{' && a.DHCP == nil {
				a.DHCP = new(CNIAddedDNS)
			}
			dns := a.DHCP
			return d.structField("dhcp", func(d *decoder, key string) error {
				switch foldName(key) {
				case "DNS":
					return d.stringSliceField(&dns.DNS, "dhcp.dns")
				case "DOMAIN":
					return d.stringField(&dns.Domain, "dhcp.domain")
				}
				return d.skip()
			})
		}
		return d.skip()
	})
	return a, err
}

// EncodeCNIRequest returns r as JSON.
func EncodeCNIRequest(r CNIRequest) []byte {
	b := make([]byte, 0, 192)
	b = AppendJSONString(append(b, `{"container_id":`...), r.ContainerID)
	b = appendOmitEmpty(b, "netns", r.Netns)
	b = AppendJSONString(append(b, `,"ifname":`...), r.IfName)
	b = AppendJSONString(append(b, `,"network":`...), r.Network)
	b = appendOmitEmpty(b, "ip", r.IP)
	b = appendOmitEmpty(b, "ip6", r.IP6)
	b = appendOmitEmpty(b, "mac", r.MAC)
	b = appendOmitEmpty(b, "name", r.Name)
	b = appendOmitEmpty(b, "hostname", r.Hostname)
	return append(b, '}')
}

// EncodeCNIGC returns g as JSON.
func EncodeCNIGC(g CNIGC) []byte {
	b := AppendJSONString([]byte(`{"network":`), g.Network)
	b = append(b, `,"valid":`...)
	if g.Valid == nil {
		return append(b, "null}"...)
	}
	b = append(b, '[')
	for i, a := range g.Valid {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendJSONString(append(b, `{"container_id":`...), a.ContainerID)
		b = AppendJSONString(append(b, `,"ifname":`...), a.IfName)
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

// structField reads an object into a struct field through field. Null
// leaves the struct as it was and a repeated member merges into it, as
// encoding/json does.
func (d *decoder) structField(name string, field func(d *decoder, key string) error) error {
	switch d.peek() {
	case 'n':
		return d.literal("null")
	case '{':
		return d.object(field)
	}
	return d.mismatch("field "+strconv.Quote(name), "an object")
}

// stringSliceField reads an array of strings.
func (d *decoder) stringSliceField(dst *[]string, name string) error {
	return sliceField(d, dst, name, func(d *decoder, s *string) error {
		return d.stringField(s, name+"[]")
	})
}

// sliceField reads an array into a slice field, elem reading each element
// in place. It does what encoding/json does: null makes the slice nil, []
// makes it empty but not nil, and the elements are decoded into the
// slice's backing array, so a null element (which decodes nothing) keeps
// what a repeated member left there.
func sliceField[T any](d *decoder, dst *[]T, name string, elem func(d *decoder, e *T) error) error {
	switch d.peek() {
	case 'n':
		*dst = nil
		return d.literal("null")
	case '[':
	default:
		return d.mismatch("field "+strconv.Quote(name), "an array")
	}
	s := (*dst)[:cap(*dst)]
	n := 0
	err := d.elements(func(d *decoder) error {
		if n == len(s) {
			var zero T
			s = append(s, zero)
			s = s[:cap(s)]
		}
		n++
		return elem(d, &s[n-1])
	})
	switch {
	case err != nil:
		return err
	case n == 0:
		*dst = []T{}
	default:
		*dst = s[:n]
	}
	return nil
}
