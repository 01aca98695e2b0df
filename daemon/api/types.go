// Package api holds the request and response types that travel over
// underlayd's unix socket, the client the CLI and the hook use, the
// parsing of container annotations, and the small JSON reader and writer
// the hook uses (wire.go). It is imported by the hook, so it stays free of
// netlink, bbolt, containerd and encoding/json: every import here is paid
// for on each container start.
package api

// Version prefixes every route so the wire format can change without
// breaking an old hook talking to a new daemon.
const Version = "v1"

// HookEnv is the environment underlay's hook definitions give the hook:
// contrib/hooks.d/underlay.json and what underlay-runc adds to a bundle
// (with UNDERLAY_SOCKET when it is set). The hook does one thing at a
// time, and a Go program told GOMAXPROCS=1 starts fewer threads before
// main and has fewer to end at exit: 0.24 ms less per start, measured
// here (400 paired execs). The runtime passes a hook this environment and
// nothing else; the hook reads only UNDERLAY_SOCKET.
var HookEnv = []string{"GOMAXPROCS=1"}

// DefaultSocket is where underlayd listens unless told otherwise.
const DefaultSocket = "/run/underlay/underlay.sock"

// MaxBodyBytes bounds every request body; a network spec or an attach
// request is a few hundred bytes, so anything near this is an error.
const MaxBodyBytes = 1 << 20

// NetworkCreate is `underlay network create`, with Docker's flag names.
type NetworkCreate struct {
	Name     string            `json:"name"`
	Driver   string            `json:"driver,omitempty"`
	Subnets  []string          `json:"subnets,omitempty"`
	Gateways []string          `json:"gateways,omitempty"`
	IPRanges []string          `json:"ip_ranges,omitempty"`
	Aux      []string          `json:"aux_addresses,omitempty"`
	IPv6     bool              `json:"ipv6,omitempty"`
	Internal bool              `json:"internal,omitempty"`
	Options  map[string]string `json:"options,omitempty"`
	// IPAMDriver is where addresses come from (--ipam-driver); empty
	// means "default", this host's own allocator.
	IPAMDriver string `json:"ipam_driver,omitempty"`
	// Scope is "local" (empty: this host only) or "global": stored in the
	// cluster's etcd, every host sees it and shares its addresses.
	Scope string `json:"scope,omitempty"`
	// Labels are the user's own metadata (--label k=v), as in Docker.
	Labels map[string]string `json:"labels,omitempty"`
	// HostAddresses give the host a shim on the parent with these
	// addresses (--host-address, one per family), so that it reaches its
	// containers.
	HostAddresses []string `json:"host_addresses,omitempty"`
	// CNIConfDir, if set, is where underlayd writes the network's CNI
	// conflist (--cni-conf-dir), for underlay-cni at CNISocket.
	CNIConfDir string `json:"cni_conf_dir,omitempty"`
	CNISocket  string `json:"cni_socket,omitempty"`
}

// Network is a stored network as `network inspect` shows it.
type Network struct {
	ID       string            `json:"id"`
	Name     string            `json:"name"`
	Driver   string            `json:"driver"`
	Parent   string            `json:"parent"`
	Mode     string            `json:"mode"`
	Flag     string            `json:"ipvlan_flag,omitempty"`
	MTU      int               `json:"mtu,omitempty"`
	Internal bool              `json:"internal"`
	IPv6     bool              `json:"ipv6"`
	Subnets  []Subnet          `json:"subnets"`
	Options  map[string]string `json:"options,omitempty"`
	// IPAMDriver is the address driver: "default" keeps the leases on
	// this host.
	IPAMDriver string `json:"ipam_driver"`
	// Scope is "local" or "global" (the addresses are shared by every
	// host through etcd).
	Scope   string            `json:"scope"`
	Labels  map[string]string `json:"labels,omitempty"`
	Created string            `json:"created"`
	// HostAddresses are the host shim's addresses (--host-address).
	HostAddresses []string `json:"host_addresses,omitempty"`
	// CNIConf is the conflist underlayd wrote for the network, removed
	// with it.
	CNIConf string `json:"cni_conf,omitempty"`

	// Shim is filled in by inspect for a network with host addresses.
	Shim *ShimInfo `json:"shim,omitempty"`

	// ParentInfo is filled in by inspect: what the kernel says now.
	ParentInfo *ParentInfo `json:"parent_info,omitempty"`
	// Endpoints is filled in by inspect.
	Endpoints []Endpoint `json:"endpoints,omitempty"`
	// Usage is filled in by ls and inspect: how full each subnet is.
	Usage []SubnetUsage `json:"usage,omitempty"`
}

// SubnetUsage is how full one subnet of a network is. On a global network
// it counts every host's addresses; on a DHCP network, this host's leases.
type SubnetUsage struct {
	Subnet string `json:"subnet"`
	// InUse counts the addresses held, static ones included.
	InUse uint64 `json:"in_use"`
	// Free counts the addresses left to hand out (the --ip-range, or the
	// subnet, less what is held and reserved); nil where the LAN's DHCP
	// server decides. A float: an IPv6 /64 has 2^64.
	Free *float64 `json:"free,omitempty"`
}

// ShimInfo is the state of a network's host shim.
type ShimInfo struct {
	Name      string   `json:"name"`
	Exists    bool     `json:"exists"`
	Up        bool     `json:"up"`
	Addresses []string `json:"addresses,omitempty"`
}

// Subnet is one pool of a network.
type Subnet struct {
	Subnet  string            `json:"subnet"`
	Gateway string            `json:"gateway,omitempty"`
	IPRange string            `json:"ip_range,omitempty"`
	Aux     map[string]string `json:"aux_addresses,omitempty"`
}

// ParentInfo describes the parent link of a network.
type ParentInfo struct {
	Name   string `json:"name"`
	Exists bool   `json:"exists"`
	Up     bool   `json:"up"`
	Kind   string `json:"kind,omitempty"`
	MTU    int    `json:"mtu,omitempty"`
	VLAN   int    `json:"vlan_id,omitempty"`
	Base   string `json:"vlan_base,omitempty"`
	Owned  bool   `json:"owned_by_underlay"`
	Dummy  bool   `json:"dummy,omitempty"`
}

// AttachRequest is what the hook sends at createRuntime.
type AttachRequest struct {
	// Namespace is the containerd namespace, empty for other runtimes.
	Namespace   string          `json:"namespace,omitempty"`
	ContainerID string          `json:"container_id"`
	Pid         int             `json:"pid"`
	Networks    []NetworkAttach `json:"networks"`
	// Name is the container's name where the runtime gives one
	// (io.underlay.name, nerdctl/name), then its aliases, comma-separated:
	// a DHCP client's identity and MAC derive from the first, so a
	// container made again under its name is the same client; all of
	// them resolve on the networks' DNS.
	Name string `json:"name,omitempty"`
	// Bundle is the container's OCI bundle, where underlayd reads its
	// hostname (config.json) when a network needs it.
	Bundle string `json:"bundle,omitempty"`
	// Hostname is set by underlayd for a CNI ADD, never sent: the
	// hostname the runtime passed in CNI_ARGS.
	Hostname string `json:"-"`
}

// NetworkAttach is one requested network, in interface order.
type NetworkAttach struct {
	Name string `json:"name"`
	IP   string `json:"ip,omitempty"`
	IP6  string `json:"ip6,omitempty"`
	MAC  string `json:"mac,omitempty"`
	// IfName and CNI are set by underlayd for a CNI ADD, never sent: the
	// interface name CNI chose, and that CNI made the endpoint.
	IfName string `json:"-"`
	CNI    bool   `json:"-"`
}

// CNIRequest is one CNI call of underlay-cni (ADD, DEL or CHECK) for one
// network: the runtime's container id, netns and interface name.
type CNIRequest struct {
	ContainerID string `json:"container_id"`
	Netns       string `json:"netns,omitempty"`
	IfName      string `json:"ifname"`
	Network     string `json:"network"`
	IP          string `json:"ip,omitempty"`
	IP6         string `json:"ip6,omitempty"`
	MAC         string `json:"mac,omitempty"`
	// Name and Hostname are the container's, where the runtime passes
	// them (Kubernetes' K8S_POD_NAMESPACE/K8S_POD_NAME, nerdctl's
	// NERDCTL_CNI_DHCP_HOSTNAME): a DHCP network's identity uses them.
	Name     string `json:"name,omitempty"`
	Hostname string `json:"hostname,omitempty"`
}

// ConnectRequest is `network connect` / `network disconnect` of a
// running container. Container is one underlay has endpoints of (as
// endpoint ls names it, its id or a unique prefix), else a containerd
// namespace/id (or a bare id in containerd's "default" namespace) that
// underlayd asks its containerd about. Pid or Netns name the container's
// network namespace instead; Container then names the container (its
// endpoints' key), and may be empty.
type ConnectRequest struct {
	Network   string `json:"network"`
	Container string `json:"container,omitempty"`
	Pid       int    `json:"pid,omitempty"`
	Netns     string `json:"netns,omitempty"`
	IP        string `json:"ip,omitempty"`
	IP6       string `json:"ip6,omitempty"`
	MAC       string `json:"mac,omitempty"`
}

// CNIGC is a CNI GC: every CNI attachment of Network not in Valid goes.
type CNIGC struct {
	Network string          `json:"network"`
	Valid   []CNIAttachment `json:"valid"`
}

// CNIAttachment names one attachment as CNI does.
type CNIAttachment struct {
	ContainerID string `json:"container_id"`
	IfName      string `json:"ifname"`
}

// DetachRequest is what the hook sends at poststop, and what the event
// handler and reconciliation use inside the daemon.
type DetachRequest struct {
	Namespace   string `json:"namespace,omitempty"`
	ContainerID string `json:"container_id"`
	Pid         int    `json:"pid,omitempty"`
}

// Endpoint is one container interface on one network.
type Endpoint struct {
	Network     string   `json:"network"`
	Namespace   string   `json:"namespace,omitempty"`
	ContainerID string   `json:"container_id"`
	IfName      string   `json:"ifname"`
	MAC         string   `json:"mac"`
	Addresses   []string `json:"addresses"`
	Gateways    []string `json:"gateways,omitempty"`
	NetnsInode  uint64   `json:"netns_inode"`
	NetnsCookie uint64   `json:"netns_cookie,omitempty"`
	// TempName is set only in an intent (an attach or a detach in
	// flight), which it names: for an attach, the interface's name before
	// its rename to IfName, so that a crash in between can be undone.
	TempName string `json:"temp_ifname,omitempty"`
	Parent   string `json:"parent"`
	// State is "attached" for every stored endpoint.
	State   string `json:"state"`
	Created string `json:"created"`
	// DHCP is the lease of an endpoint on a --ipam-driver dhcp network.
	DHCP *DHCPLease `json:"dhcp,omitempty"`
	// CNI says a CNI ADD made the endpoint (underlay-cni), so CNI's GC
	// may release it; the hook's are the runtime's own.
	CNI bool `json:"cni,omitempty"`
	// Names are the container's names on the network's DNS (127.0.0.11).
	Names []string `json:"names,omitempty"`
}

// Container names the endpoint's container as endpoint ls, the events and
// the logs do: namespace/id, or the id alone outside containerd.
func (e Endpoint) Container() string {
	if e.Namespace == "" {
		return e.ContainerID
	}
	return e.Namespace + "/" + e.ContainerID
}

// DHCPLease is what the LAN's DHCP server granted an endpoint, with the
// identity underlay gave the container and the times it acts on.
type DHCPLease struct {
	// Name is the container's name the identity derives from.
	Name     string `json:"name"`
	Hostname string `json:"hostname,omitempty"`
	// ClientID is option 61 in hex: 0xff, the IAID, the DUID (RFC 4361).
	ClientID string   `json:"client_id"`
	Server   string   `json:"server"`
	Router   string   `json:"router,omitempty"`
	DNS      []string `json:"dns,omitempty"`
	Domain   string   `json:"domain,omitempty"`
	// Routed says the lease's router is the container's default route.
	Routed bool `json:"default_route,omitempty"`
	// Times are RFC 3339: the renewal (T1), rebinding (T2) and expiry.
	Obtained string `json:"obtained"`
	Renew    string `json:"renew_at"`
	Rebind   string `json:"rebind_at"`
	Expires  string `json:"expires"`
	// State is "bound", or "lost" once the server refused the lease or
	// it expired: the address is then off the interface, and Reason says
	// why, until a new lease comes.
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	// V6 is the IPv6 side on a network with --ipv6.
	V6 *DHCP6Lease `json:"v6,omitempty"`
}

// DHCP6Lease is an endpoint's IPv6 address on a DHCP network: a DHCPv6
// IA_NA lease, or (Mode "slaac") the address the LAN's router
// advertisements gave, which underlay reports but does not keep.
type DHCP6Lease struct {
	Mode string `json:"mode"`
	// Server is the DHCPv6 server's DUID in hex.
	Server   string   `json:"server_duid,omitempty"`
	DNS      []string `json:"dns,omitempty"`
	Domains  []string `json:"domains,omitempty"`
	Obtained string   `json:"obtained,omitempty"`
	Renew    string   `json:"renew_at,omitempty"`
	Rebind   string   `json:"rebind_at,omitempty"`
	Expires  string   `json:"expires,omitempty"`
	// State is "bound", or "lost" with Reason.
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
}

// AttachResponse lists the endpoints made, in interface order.
type AttachResponse struct {
	Endpoints []Endpoint `json:"endpoints"`
}

// DetachResponse lists the endpoints released.
type DetachResponse struct {
	Released []Endpoint `json:"released"`
}

// Error is the body of every non-2xx answer.
type Error struct {
	Error string `json:"error"`
}

// PruneResponse says how many dead endpoints a prune released.
type PruneResponse struct {
	Released int `json:"released"`
}

// Host is one host of the cluster that shares the global networks.
type Host struct {
	Name string `json:"name"`
	// Alive says the host's liveness key is there: etcd heard from its
	// underlayd within the last 10 seconds.
	Alive bool `json:"alive"`
	// LastSeen is when the host last recorded that it was up (RFC 3339).
	LastSeen string `json:"last_seen,omitempty"`
	// Endpoints is how many global addresses the host holds.
	Endpoints int `json:"endpoints"`
}

// ReclaimResponse says what a reclaim of a gone host did: the addresses
// freed, and those kept because something still answers for them on the
// wire (or could not be probed).
type ReclaimResponse struct {
	Host  string `json:"host"`
	Freed int    `json:"freed"`
	Kept  int    `json:"kept"`
}
