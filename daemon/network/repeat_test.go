package network

import (
	"testing"
)

// A repeated hook whose second network is refused takes back only what
// that request made: the endpoints the container already had stay, with
// their interfaces and leases.
func TestFakeRepeatedAttachRefusedKeepsWhatWasThere(t *testing.T) {
	h := newFakeHost(t)
	h.create(netReq("a", "", "10.1.0.0/24", "parent=eth1"), netReq("b", "", "10.2.0.0/24", "parent=eth1"),
		netReq("c", "", "10.3.0.0/24", "parent=eth1"))
	req := on("c1", 2, "a", "b")
	h.start(req)
	want := []string{"a c1 eth0 10.1.0.2/24", "b c1 eth1 10.2.0.2/24"}
	same(t, "endpoints", h.eps(), want)

	// b asks for another address than it has.
	again := on("c1", 2, "a", "b")
	again.Networks[1].IP = "10.2.0.50"
	_, err := h.attach(again)
	wantErr(t, err, ErrExists, "not 10.2.0.50")
	h.m.Wait()
	same(t, "endpoints after a refused repeat", h.eps(), want)
	same(t, "interfaces after a refused repeat", h.k.ifs(2), []string{"eth0 10.1.0.2/24", "eth1 10.2.0.2/24"})

	// A repeat that adds a network which then fails: only that one goes.
	again = on("c1", 2, "a", "b", "c")
	again.Networks[2].IP = "10.9.9.9"
	_, err = h.attach(again)
	if err == nil {
		t.Fatal("a static address outside the subnet was accepted")
	}
	h.m.Wait()
	same(t, "endpoints after a refused new network", h.eps(), want)
	same(t, "interfaces after a refused new network", h.k.ifs(2), []string{"eth0 10.1.0.2/24", "eth1 10.2.0.2/24"})
}
