package etcd

import (
	"context"
)

// KV is the part of etcd the driver uses: single-key reads, prefix reads,
// and transactions whose compares are on a key's revisions or value. The
// etcd client implements it (Client); a map in memory does for tests.
type KV interface {
	// Get reads key linearizably; a missing key is a zero Pair.
	Get(ctx context.Context, key string) (Pair, error)
	// List reads every key under prefix, at one revision, which it returns.
	List(ctx context.Context, prefix string) ([]Pair, int64, error)
	// Txn applies then if every compare holds, at revision rev, else reads
	// the keys of reads. ok says which happened.
	Txn(ctx context.Context, ifs []Cmp, then []Op, reads []string) (ok bool, rev int64, got []Pair, err error)
	// Watch sends the changes under prefix after revision rev, in order,
	// until ctx ends. A closed channel means the watch broke: List again.
	Watch(ctx context.Context, prefix string, rev int64) <-chan []Event
}

// Pair is a key and its value at ModRev; CreateRev 0 means no such key.
type Pair struct {
	Key       string
	Value     []byte
	CreateRev int64
	ModRev    int64
}

// Exists reports whether the key was there.
func (p Pair) Exists() bool { return p.CreateRev != 0 }

// Cmp is one compare of a transaction.
type Cmp struct {
	Key string
	// Exactly one of these: the key's ModRev must equal ModRev (0: the key
	// must not exist), or its value must equal Value.
	ModRev  int64
	Value   []byte
	ByValue bool
}

// Absent is the compare "key does not exist".
func Absent(key string) Cmp { return Cmp{Key: key} }

// Unchanged is the compare "key is still at revision rev".
func Unchanged(key string, rev int64) Cmp { return Cmp{Key: key, ModRev: rev} }

// Holds is the compare "key's value is v".
func Holds(key string, v []byte) Cmp { return Cmp{Key: key, Value: v, ByValue: true} }

// Op is a put or a delete. A put with TTL > 0 puts the key under a lease
// of that many seconds, after which etcd deletes it; a delete with Prefix
// deletes every key under Key.
type Op struct {
	Key    string
	Value  []byte
	Delete bool
	Prefix bool
	TTL    int64
}

// Put, PutTTL, Del and DelPrefix build Ops.
func Put(key string, v []byte) Op               { return Op{Key: key, Value: v} }
func PutTTL(key string, v []byte, ttl int64) Op { return Op{Key: key, Value: v, TTL: ttl} }
func Del(key string) Op                         { return Op{Key: key, Delete: true} }
func DelPrefix(prefix string) Op                { return Op{Key: prefix, Delete: true, Prefix: true} }

// Event is one change seen by a watch: a put (Value set) or a delete.
type Event struct {
	Key    string
	Value  []byte
	Delete bool
	ModRev int64
}
