package metrics

import (
	"time"

	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/daemon/store"
)

// TimedStore is the store with its write transactions timed for the
// metrics: the ones on the attach and detach paths, and the network
// records.
type TimedStore struct {
	*store.Store
	M *Metrics
}

func (s TimedStore) time(op string, start time.Time) { s.M.Commit(op, time.Since(start)) }

func (s TimedStore) PutEndpoint(ep api.Endpoint) error {
	defer s.time("put_endpoint", time.Now())
	return s.Store.PutEndpoint(ep)
}

func (s TimedStore) DeleteEndpoint(ep api.Endpoint) error {
	defer s.time("delete_endpoints", time.Now())
	return s.Store.DeleteEndpoint(ep)
}

func (s TimedStore) DeleteEndpoints(eps []api.Endpoint) error {
	defer s.time("delete_endpoints", time.Now())
	return s.Store.DeleteEndpoints(eps)
}

func (s TimedStore) CreateNetwork(n api.Network) error {
	defer s.time("create_network", time.Now())
	return s.Store.CreateNetwork(n)
}

func (s TimedStore) DeleteNetwork(name string) error {
	defer s.time("delete_network", time.Now())
	return s.Store.DeleteNetwork(name)
}
