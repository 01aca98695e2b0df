package api

// Event is one thing underlayd did, as `underlay events` streams it
// (GET /v1/events, one JSON object per line) and the metrics count it.
type Event struct {
	// Time is when it happened, RFC 3339 with nanoseconds, UTC.
	Time string `json:"time"`
	// Type is one of the Event* constants.
	Type    string `json:"type"`
	Network string `json:"network,omitempty"`
	Driver  string `json:"driver,omitempty"`
	// Container is namespace/id, as endpoint ls names it.
	Container string   `json:"container,omitempty"`
	IfName    string   `json:"ifname,omitempty"`
	Addresses []string `json:"addresses,omitempty"`
	MAC       string   `json:"mac,omitempty"`
	// Parent is the link of a parent event, or an endpoint's parent.
	Parent string `json:"parent,omitempty"`
	// Path is what released an endpoint (the Release* constants), or
	// what ran a reconcile.
	Path string `json:"path,omitempty"`
	// Result is "ok", or the class of the error (ErrorClass*).
	Result string `json:"result,omitempty"`
	Error  string `json:"error,omitempty"`
	// Seconds is how long an attach or a detach took in underlayd.
	Seconds float64 `json:"seconds,omitempty"`
	// Released counts the endpoints a reconcile released.
	Released int `json:"released,omitempty"`
	// Dropped counts the events this reader missed because it read too
	// slowly (type "dropped"); the daemon never waits for a reader.
	Dropped int `json:"dropped,omitempty"`
}

// Event types.
const (
	EventAttach        = "attach"
	EventDetach        = "detach"
	EventParentCreate  = "parent-create"
	EventParentRemove  = "parent-remove"
	EventReconcile     = "reconcile"
	EventNetworkCreate = "network-create"
	EventNetworkRemove = "network-remove"
	EventLeaseLost     = "lease-lost"
	EventDropped       = "dropped"
)

// EventTypes are the types a reader may filter on, in the order the
// events' help lists them.
var EventTypes = []string{EventAttach, EventDetach, EventReconcile, EventParentCreate, EventParentRemove,
	EventNetworkCreate, EventNetworkRemove, EventLeaseLost}

// What released an endpoint (Event.Path of a detach), and what ran a
// reconcile.
const (
	ReleasePoststop   = "poststop"   // the poststop hook (or a DELETE of the container's endpoints)
	ReleaseEvent      = "event"      // containerd said the container or its task is gone
	ReleaseReconcile  = "reconcile"  // its namespace is gone, or containerd no longer knows it
	ReleasePrune      = "prune"      // underlay endpoint prune
	ReleaseCNI        = "cni-del"    // a CNI DEL
	ReleaseGC         = "cni-gc"     // a CNI GC
	ReleaseDisconnect = "disconnect" // underlay network disconnect
	ReleaseRollback   = "rollback"   // a multi-network attach failed on a later network
	ReleaseReplaced   = "replaced"   // the same container attached again in a new namespace
)

// Classes of errors (Event.Result), one per sentinel the API maps to a
// status code.
const (
	ResultOK           = "ok"
	ErrorClassInvalid  = "invalid"
	ErrorClassNoParent = "no_parent"
	ErrorClassNotFound = "not_found"
	ErrorClassInUse    = "in_use"
	ErrorClassFull     = "exhausted"
	ErrorClassNoLease  = "no_lease"
	ErrorClassTimeout  = "timeout" // a shared store (etcd) did not answer in time
	ErrorClassInternal = "internal"
)

// Results are every Event.Result an attach or a detach can have.
var Results = []string{ResultOK, ErrorClassInvalid, ErrorClassNoParent, ErrorClassNotFound, ErrorClassInUse,
	ErrorClassFull, ErrorClassNoLease, ErrorClassTimeout, ErrorClassInternal}

// NetworkUsage is one network's endpoints and how full its subnets are.
type NetworkUsage struct {
	Name      string        `json:"name"`
	Driver    string        `json:"driver"`
	Endpoints int           `json:"endpoints"`
	Subnets   []SubnetUsage `json:"subnets"`
}
