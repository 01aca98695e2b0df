package etcd

import (
	"bytes"
	"context"
	"errors"
	"sort"
	"strings"
	"sync"
)

// memKV is KV in memory, with etcd's revisions, leases that expire when
// the test says so, and faults: fail makes the next Txn fail before it
// applies, lost makes it apply and then report an error (a write whose
// answer never came back), stall makes it apply and then wait until its
// context ends, as a client gives up on a server that stopped answering.
// A request whose context has ended fails, as the client's does.
type memKV struct {
	mu       sync.Mutex
	rev      int64
	keys     map[string]Pair
	ttl      map[string]int64 // key -> TTL it was put with
	watchers []*memWatch
	fail     int            // Txns still to fail before applying
	lost     int            // Txns still to apply and then fail
	stall    int            // Txns still to apply and then wait for their context to end
	onApply  func(m *memKV) // run, locked, once the next Txn has applied
	down     bool
	txns     int
}

type memWatch struct {
	prefix string
	ch     chan []Event
	ctx    context.Context
}

var errUnavailable = errors.New("etcdserver: request timed out")

func newMemKV() *memKV { return &memKV{keys: map[string]Pair{}, ttl: map[string]int64{}} }

func (m *memKV) Get(ctx context.Context, key string) (Pair, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return Pair{}, err
	}
	if m.down {
		return Pair{}, errUnavailable
	}
	return m.keys[key], nil
}

func (m *memKV) List(ctx context.Context, prefix string) ([]Pair, int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	if m.down {
		return nil, 0, errUnavailable
	}
	var out []Pair
	for k, p := range m.keys {
		if strings.HasPrefix(k, prefix) {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, m.rev, nil
}

func (m *memKV) holds(c Cmp) bool {
	p := m.keys[c.Key]
	if c.ByValue {
		return p.Exists() && bytes.Equal(p.Value, c.Value)
	}
	return p.ModRev == c.ModRev
}

func (m *memKV) Txn(ctx context.Context, ifs []Cmp, then []Op, reads []string) (bool, int64, []Pair, error) {
	ok, rev, got, stalled, err := m.txn(ctx, ifs, then, reads)
	if stalled {
		<-ctx.Done()
		return false, 0, nil, ctx.Err()
	}
	return ok, rev, got, err
}

func (m *memKV) txn(ctx context.Context, ifs []Cmp, then []Op, reads []string) (bool, int64, []Pair, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.txns++
	if err := ctx.Err(); err != nil {
		return false, 0, nil, false, err
	}
	if m.down {
		return false, 0, nil, false, errUnavailable
	}
	if m.fail > 0 {
		m.fail--
		return false, 0, nil, false, errUnavailable
	}
	ok := true
	for _, c := range ifs {
		ok = ok && m.holds(c)
	}
	if !ok {
		var got []Pair
		for _, k := range reads {
			got = append(got, m.keys[k])
		}
		return false, 0, got, false, nil
	}
	m.rev++
	var evs []Event
	for _, op := range then {
		switch {
		case op.Delete && op.Prefix:
			for k := range m.keys {
				if strings.HasPrefix(k, op.Key) {
					delete(m.keys, k)
					evs = append(evs, Event{Key: k, Delete: true, ModRev: m.rev})
				}
			}
		case op.Delete:
			if _, ok := m.keys[op.Key]; ok {
				delete(m.keys, op.Key)
				evs = append(evs, Event{Key: op.Key, Delete: true, ModRev: m.rev})
			}
		default:
			p := m.keys[op.Key]
			if !p.Exists() {
				p.CreateRev = m.rev
			}
			p.Key, p.Value, p.ModRev = op.Key, op.Value, m.rev
			m.keys[op.Key] = p
			m.ttl[op.Key] = op.TTL
			evs = append(evs, Event{Key: op.Key, Value: op.Value, ModRev: m.rev})
		}
	}
	m.notify(evs)
	stalled, lost := m.stall > 0, m.stall == 0 && m.lost > 0
	if stalled {
		m.stall--
	} else if lost {
		m.lost--
	}
	if f := m.onApply; f != nil {
		m.onApply = nil
		f(m) // after the counts: it may set faults of the next Txn
	}
	if stalled || lost {
		return false, 0, nil, stalled, errUnavailable
	}
	return true, m.rev, nil, false, nil
}

func (m *memKV) notify(evs []Event) {
	for _, w := range m.watchers {
		var mine []Event
		for _, e := range evs {
			if strings.HasPrefix(e.Key, w.prefix) {
				mine = append(mine, e)
			}
		}
		if len(mine) > 0 && w.ctx.Err() == nil {
			w.ch <- mine
		}
	}
}

func (m *memKV) Watch(ctx context.Context, prefix string, _ int64) <-chan []Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	w := &memWatch{prefix: prefix, ch: make(chan []Event, 4096), ctx: ctx}
	m.watchers = append(m.watchers, w)
	go func() {
		<-ctx.Done()
		m.mu.Lock()
		defer m.mu.Unlock()
		for i, o := range m.watchers {
			if o == w {
				m.watchers = append(m.watchers[:i], m.watchers[i+1:]...)
				break
			}
		}
		close(w.ch)
	}()
	return w.ch
}

// expire deletes the keys put with a TTL, as etcd does when their lease
// runs out.
func (m *memKV) expire() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rev++
	var evs []Event
	for k, ttl := range m.ttl {
		if _, ok := m.keys[k]; ok && ttl > 0 {
			delete(m.keys, k)
			evs = append(evs, Event{Key: k, Delete: true, ModRev: m.rev})
		}
	}
	m.notify(evs)
}

// set makes the next n Txns fail (lost: after applying).
func (m *memKV) set(fail, lost int, down bool) {
	m.mu.Lock()
	m.fail, m.lost, m.down = fail, lost, down
	m.mu.Unlock()
}

// after runs f, locked, once the next Txn has applied: f sets the faults
// that follow a write, e.g. etcd gone before the write's answer came.
func (m *memKV) after(f func(m *memKV)) {
	m.mu.Lock()
	m.onApply = f
	m.mu.Unlock()
}

var _ KV = (*memKV)(nil)
