package ipam

// Owner is who holds a lease: one interface of one container on one
// network. Drivers that share a network's addresses among hosts record it
// with the lease, so that a retried request finds its own, and a host's
// leases can be listed and reclaimed.
type Owner struct {
	Network   string
	Namespace string // containerd namespace; empty for podman and runc
	Container string
	IfName    string
}
