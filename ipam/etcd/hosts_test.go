package etcd

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestCheckHostName(t *testing.T) {
	// What hosts may already run with stays a name: node:1, rack1@dc2, a
	// trailing-dot FQDN, a non-ASCII hostname.
	for _, ok := range []string{"h1", "node-1.example.com", "Web_01", "node:1", "rack1@dc2", "node.example.com.", "héte",
		strings.Repeat("b", 253)} {
		if err := CheckHostName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, c := range []struct{ name, want string }{
		{"", "empty"},
		{"bad name", `' ' is not allowed: a host name is one word, without '/'`},
		{"a/b", `'/' is not allowed`},
		{"a\tb", `'\t' is not allowed`},
		{"a\x00b", `'\x00' is not allowed`},
		{"a\xffb", "not UTF-8"},
		{strings.Repeat("a", 300), "300 characters: want at most 253"},
	} {
		err := CheckHostName(c.name)
		if !errors.Is(err, ErrBadHostName) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want %q", c.name, err, c.want)
		}
	}
}

// A reclaim of a host the cluster never heard of says so, naming the
// hosts it knows; one of a host that holds nothing frees nothing; a name
// that is no host name is refused before it reads any key.
func TestReclaimUnknownHost(t *testing.T) {
	kv := newMemKV()
	c1, _ := host(t, kv, "h1", 0)
	_, d2 := host(t, kv, "h2", 0)
	c3, _ := host(t, kv, "h3", 0)
	if err := c1.Beat(); err != nil {
		t.Fatal(err)
	}
	if err := c3.Beat(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d2.Allocate(owner("c"), 4); err != nil {
		t.Fatal(err)
	}
	none := func(string, []netip.Addr) (map[netip.Addr]bool, error) { return nil, nil }

	freed, kept, err := c1.Reclaim("NOSUCH", none)
	if !errors.Is(err, ErrHostUnknown) || err.Error() != "host NOSUCH: no such host in the cluster (known: h1, h2, h3; see underlay host ls)" {
		t.Errorf("reclaim NOSUCH: freed %d kept %d, %v", freed, kept, err)
	}
	// "h" is a prefix of every name, and no host.
	if _, _, err := c1.Reclaim("h", none); !errors.Is(err, ErrHostUnknown) {
		t.Errorf("reclaim h: %v", err)
	}
	if freed, kept, err := c1.Reclaim("h3", none); err != nil || freed != 0 || kept != 0 {
		t.Errorf("reclaim of a known host holding nothing: freed %d kept %d, %v", freed, kept, err)
	}
	if freed, _, err := c1.Reclaim("h2", none); err != nil || freed != 1 {
		t.Errorf("reclaim h2: freed %d, %v", freed, err)
	}
	if _, _, err := c1.Reclaim("h2/g", none); !errors.Is(err, ErrBadHostName) || !strings.Contains(err.Error(), `host name "h2/g": '/' is not allowed`) {
		t.Errorf("reclaim h2/g: %v", err)
	}
}

// A host name is its first owner's, up or not: another machine or state
// dir under it is refused, the owner itself is not, and host reclaim
// frees the name once nothing of the host's is left.
func TestClaimName(t *testing.T) {
	kv := newMemKV()
	is := func(id string) func([]byte) bool { return func(b []byte) bool { return string(b) == id } }
	h1 := member(t, kv, "h1")
	if err := h1.ClaimName([]byte("A"), is("A")); err != nil {
		t.Fatal(err)
	}
	if err := h1.ClaimName([]byte("A"), is("A")); err != nil {
		t.Fatalf("the owner again: %v", err)
	}
	other := member(t, kv, "h1")
	err := other.ClaimName([]byte("B"), is("B"))
	if !errors.Is(err, ErrNameTaken) || !strings.Contains(err.Error(), "host name h1 belongs to another host (A)") ||
		!strings.Contains(err.Error(), "underlay host reclaim h1") {
		t.Fatalf("another owner: %v", err)
	}
	h2 := member(t, kv, "h2")
	if _, _, err := h2.Reclaim("h1", func(string, []netip.Addr) (map[netip.Addr]bool, error) { return nil, nil }); err != nil {
		t.Fatalf("reclaim h1, which holds nothing: %v", err)
	}
	if err := other.ClaimName([]byte("B"), is("B")); err != nil {
		t.Fatalf("the name after host reclaim: %v", err)
	}
}
