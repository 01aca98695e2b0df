package api

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode"
)

// Annotation keys understood on a container.
const (
	AnnotationNetwork = "io.underlay.network"
	AnnotationIP      = "io.underlay.ip"
	AnnotationIP6     = "io.underlay.ip6"
	AnnotationMAC     = "io.underlay.mac"
	// AnnotationName is the container's name, with aliases after commas:
	// what DHCP's identity derives from where the runtime names none.
	AnnotationName   = "io.underlay.name"
	annotationPrefix = "io.underlay."
)

// ErrNoNetwork means the container asked for no underlay network.
var ErrNoNetwork = errors.New("no io.underlay.network annotation")

// MaxNetworks bounds interfaces per container: eth0..eth15 is far beyond any
// real use and keeps a typo from creating hundreds of links.
const MaxNetworks = 16

// ParseAnnotations turns a container's annotations into the networks to
// attach, in interface order. It returns ErrNoNetwork when the container
// does not ask for underlay, and a one-line error naming the annotation for
// anything malformed.
func ParseAnnotations(ann map[string]string) ([]NetworkAttach, error) {
	raw, ok := ann[AnnotationNetwork]
	if !ok {
		return nil, ErrNoNetwork
	}
	names, err := splitNetworks(raw)
	if err != nil {
		return nil, err
	}
	nets := make([]NetworkAttach, len(names))
	index := make(map[string]int, len(names))
	for i, n := range names {
		nets[i].Name = n
		index[n] = i
	}
	// Sorted keys make the error for several bad annotations deterministic.
	keys := make([]string, 0, len(ann))
	for k := range ann {
		if strings.HasPrefix(k, annotationPrefix) && k != AnnotationNetwork && k != AnnotationName {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := applyAnnotation(nets, index, names[0], k, ann[k]); err != nil {
			return nil, err
		}
	}
	if raw, ok := ann[AnnotationName]; ok {
		if _, err := ContainerNames(raw); err != nil {
			return nil, err
		}
	}
	return nets, nil
}

// StrayAnnotations says what is wrong with the annotations of a container
// without io.underlay.network that has other io.underlay.* keys: they ask
// for something (a typo such as io.underlay.networks, or io.underlay.ip
// alone) that would otherwise start it with no network and no word. nil
// if there are none, or io.underlay.network is there; io.underlay.name
// alone asks for nothing. underlay-runc refuses such a bundle; the hook,
// by the contract, does nothing without io.underlay.network.
func StrayAnnotations(ann map[string]string) error {
	if _, ok := ann[AnnotationNetwork]; ok {
		return nil
	}
	var keys []string
	for k := range ann {
		if strings.HasPrefix(k, annotationPrefix) && k != AnnotationName {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	sort.Strings(keys)
	return fmt.Errorf("annotation %s is set but %s is not, so no network would be attached (a misspelt key?)",
		strings.Join(keys, ", "), AnnotationNetwork)
}

// ContainerName is the container's name as the runtime gives it:
// io.underlay.name (the name, then its aliases, comma-separated), else
// nerdctl's, else none.
func ContainerName(ann map[string]string) string {
	if raw, ok := ann[AnnotationName]; ok {
		if names, err := ContainerNames(raw); err == nil && len(names) > 0 {
			return strings.Join(names, ",")
		}
	}
	return ann["nerdctl/name"]
}

// ContainerNames splits io.underlay.name: names of letters, digits, '-',
// '_' and '.', at most 253 characters each, as DNS and hostnames allow.
func ContainerNames(raw string) ([]string, error) {
	var out []string
	for _, n := range strings.Split(raw, ",") {
		n = strings.TrimSpace(n)
		ok := n != "" && len(n) <= 253
		for i := 0; ok && i < len(n); i++ {
			c := n[i]
			ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
		}
		if !ok {
			return nil, fmt.Errorf("annotation %s=%q: %q is not a name (letters, digits, '-', '_', '.', at most 253)", AnnotationName, raw, n)
		}
		out = append(out, n)
	}
	return out, nil
}

func splitNetworks(raw string) ([]string, error) {
	var names []string
	seen := map[string]bool{}
	for _, n := range strings.Split(raw, ",") {
		n = strings.TrimSpace(n)
		if err := ValidName(n); err != nil {
			return nil, fmt.Errorf("annotation %s=%q: %w", AnnotationNetwork, raw, err)
		}
		if seen[n] {
			return nil, fmt.Errorf("annotation %s=%q: network %s listed twice", AnnotationNetwork, raw, n)
		}
		seen[n] = true
		names = append(names, n)
	}
	if len(names) > MaxNetworks {
		return nil, fmt.Errorf("annotation %s: %d networks, at most %d", AnnotationNetwork, len(names), MaxNetworks)
	}
	return names, nil
}

// keyText is an annotation's key as an error shows it: quoted if it has
// spaces or characters that do not print, so that the error stays one
// line that says what was given.
func keyText(key string) string {
	if strings.IndexFunc(key, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) >= 0 {
		return strconv.Quote(key)
	}
	return key
}

func applyAnnotation(nets []NetworkAttach, index map[string]int, first, key, val string) error {
	base, netName := key, first
	for _, b := range []string{AnnotationIP6, AnnotationIP, AnnotationMAC} {
		if key == b {
			base = b
			break
		}
		if strings.HasPrefix(key, b+".") {
			base, netName = b, strings.TrimPrefix(key, b+".")
			break
		}
	}
	if base == key && key != AnnotationIP && key != AnnotationIP6 && key != AnnotationMAC {
		return fmt.Errorf("unknown annotation %s (known: %s, %s[.NET], %s[.NET], %s[.NET], %s)",
			keyText(key), AnnotationNetwork, AnnotationIP, AnnotationIP6, AnnotationMAC, AnnotationName)
	}
	i, ok := index[netName]
	if !ok {
		return fmt.Errorf("annotation %s names network %s, which is not in %s", keyText(key), keyText(netName), AnnotationNetwork)
	}
	val = strings.TrimSpace(val)
	n := &nets[i]
	var slot *string
	switch base {
	case AnnotationIP:
		a, err := ParseAddr(val)
		if err != nil || !a.Is4() {
			return fmt.Errorf("annotation %s=%q: not an IPv4 address", keyText(key), val)
		}
		slot, val = &n.IP, a.String()
	case AnnotationIP6:
		a, err := ParseAddr(val)
		if err != nil || !a.Is6() || a.Is4In6() || a.Zone() != "" {
			return fmt.Errorf("annotation %s=%q: not an IPv6 address", keyText(key), val)
		}
		slot, val = &n.IP6, a.String()
	case AnnotationMAC:
		m, err := ParseMAC(val)
		if err != nil {
			return fmt.Errorf("annotation %s=%q: %w", keyText(key), val, err)
		}
		slot, val = &n.MAC, m
	}
	if *slot != "" && *slot != val {
		return fmt.Errorf("annotation %s=%q conflicts with %s given for the same network", keyText(key), val, *slot)
	}
	*slot = val
	return nil
}

// ParseMAC checks a unicast Ethernet MAC (aa:bb:cc:dd:ee:ff or with dashes)
// and returns it lower-case with colons.
func ParseMAC(s string) (string, error) {
	s = strings.ToLower(strings.ReplaceAll(s, "-", ":"))
	parts := strings.Split(s, ":")
	if len(parts) != 6 {
		return "", errors.New("not a MAC address (want aa:bb:cc:dd:ee:ff)")
	}
	var first byte
	for i, p := range parts {
		if len(p) != 2 || !isHex(p[0]) || !isHex(p[1]) {
			return "", errors.New("not a MAC address (want aa:bb:cc:dd:ee:ff)")
		}
		if i == 0 {
			first = unhex(p[0])<<4 | unhex(p[1])
		}
	}
	if first&1 == 1 {
		return "", errors.New("multicast MAC address cannot be assigned to an interface")
	}
	if s == "00:00:00:00:00:00" {
		return "", errors.New("all-zero MAC address cannot be assigned to an interface")
	}
	return s, nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f'
}

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'a' + 10
}

// ValidName checks a network name: Docker's rule, a letter or digit then
// letters, digits, '_', '.', '-', at most 64 characters.
func ValidName(n string) error {
	if n == "" {
		return errors.New("empty network name")
	}
	if len(n) > 64 {
		return fmt.Errorf("network name %q is longer than 64 characters", n)
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if alnum || i > 0 && (c == '_' || c == '.' || c == '-') {
			continue
		}
		return fmt.Errorf("invalid network name %q: use letters, digits, '_', '.', '-', starting with a letter or digit", n)
	}
	return nil
}
