package etcd

import (
	"encoding/json"
	"sort"
	"strings"
	"time"
)

// HostInfo is one host of the cluster as host ls shows it.
type HostInfo struct {
	Name      string
	Alive     bool
	LastSeen  string // RFC 3339: when the host last said it was up
	Endpoints int    // addresses it holds
}

// info is the value of a host's info key, which carries no lease: it
// outlives the host, so that a gone host is known, and since when.
type info struct {
	LastSeen string `json:"last_seen"`
}

// Beat records that this host is up now.
func (c *Cluster) Beat() error {
	ctx, cancel := c.request()
	defer cancel()
	b, _ := json.Marshal(info{LastSeen: time.Now().UTC().Format(time.RFC3339)})
	key := c.hostKey(c.host, "info")
	if _, _, _, err := c.kv.Txn(ctx, nil, []Op{Put(key, b)}, nil); err != nil {
		return etcdErr("record this host's liveness", err)
	}
	return nil
}

// Hosts lists every host that is up, has been, or holds addresses.
func (c *Cluster) Hosts() ([]HostInfo, error) {
	ctx, cancel := c.request()
	defer cancel()
	hostsPrefix := c.prefix + "/" + version + "/hosts/"
	ps, _, err := c.kv.List(ctx, hostsPrefix)
	if err != nil {
		return nil, etcdErr("list hosts", err)
	}
	byName := map[string]*HostInfo{}
	get := func(name string) *HostInfo {
		if h, ok := byName[name]; ok {
			return h
		}
		h := &HostInfo{Name: name}
		byName[name] = h
		return h
	}
	for _, p := range ps {
		name, what, ok := strings.Cut(strings.TrimPrefix(p.Key, hostsPrefix), "/")
		if !ok {
			continue
		}
		h := get(name)
		switch what {
		case "alive":
			h.Alive = true
		case "info":
			var in info
			if json.Unmarshal(p.Value, &in) == nil {
				h.LastSeen = in.LastSeen
			}
		}
	}
	owners, _, err := c.kv.List(ctx, c.prefix+"/"+version+"/owners/")
	if err != nil {
		return nil, etcdErr("list hosts", err)
	}
	for _, p := range owners {
		name, _, _ := strings.Cut(strings.TrimPrefix(p.Key, c.prefix+"/"+version+"/owners/"), "/")
		get(name).Endpoints++
	}
	out := make([]HostInfo, 0, len(byName))
	for _, h := range byName {
		out = append(out, *h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
