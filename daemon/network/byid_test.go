package network

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// As Docker's network commands do, inspect and rm take a network's ID or a
// prefix of it that no other ID shares; a name always wins, and a prefix
// two IDs share is refused with the networks it matches.
func TestFakeNetworkByID(t *testing.T) {
	h := newFakeHost(t)
	ids := map[string]string{} // first hex digit -> name
	var twin [2]string         // two names whose IDs share a first digit
	for i := 0; twin[0] == ""; i++ {
		name := fmt.Sprintf("n%d", i)
		n, err := h.m.Create(netReq(name, "", fmt.Sprintf("10.%d.0.0/24", i), "parent=eth1"))
		if err != nil {
			t.Fatal(err)
		}
		if other, ok := ids[n.ID[:1]]; ok {
			twin = [2]string{other, name}
		}
		ids[n.ID[:1]] = name
	}
	a, err := h.m.Inspect(twin[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{a.ID, a.ID[:12]} {
		got, err := h.m.Inspect(ref)
		if err != nil || got.Name != a.Name {
			t.Errorf("inspect %s: %s, %v; want %s", ref, got.Name, err, a.Name)
		}
	}
	_, err = h.m.Inspect(a.ID[:1])
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "matches 2 networks") {
		t.Errorf("inspect by a shared prefix: %v", err)
	}
	if _, err := h.m.Inspect("0123456789ab0"); !errors.Is(err, ErrNotFound) {
		t.Errorf("inspect by an ID nobody has: %v", err)
	}

	// A network named like another's ID prefix is found by its name.
	if _, err := h.m.Create(netReq(a.ID[:4], "", "10.200.0.0/24", "parent=eth1")); err != nil {
		t.Fatal(err)
	}
	if got, err := h.m.Inspect(a.ID[:4]); err != nil || got.Name != a.ID[:4] {
		t.Errorf("inspect of a name that is also an ID prefix: %s, %v", got.Name, err)
	}

	if err := h.m.Remove(a.ID[:12]); err != nil {
		t.Fatalf("rm by ID prefix: %v", err)
	}
	if _, err := h.m.Inspect(a.Name); !errors.Is(err, ErrNotFound) {
		t.Errorf("network removed by ID still there: %v", err)
	}
	if got, _ := h.m.Inspect(twin[1]); got.Name != twin[1] {
		t.Errorf("rm by ID removed the wrong network")
	}
}
