package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/underlay/underlay/daemon/network"
	"github.com/underlay/underlay/ipam/etcd"
)

// The cluster's refusals reach the API as the manager's sentinels, with
// their own text.
func TestMeaning(t *testing.T) {
	for _, c := range []struct{ from, to error }{
		{etcd.ErrNetworkExists, network.ErrExists},
		{etcd.ErrNetworkInUse, network.ErrInUse},
		{etcd.ErrNetworkGone, network.ErrNotFound},
	} {
		err := meaning(fmt.Errorf("global network g: %w", c.from))
		if !errors.Is(err, c.to) || !errors.Is(err, c.from) || !strings.HasPrefix(err.Error(), "global network g: ") {
			t.Errorf("%v: got %v, want it to be %v too", c.from, err, c.to)
		}
	}
	if err := meaning(nil); err != nil {
		t.Errorf("meaning(nil) = %v", err)
	}
}

func TestParseParents(t *testing.T) {
	got, err := parseParents([]string{"vlan30=ens3.30", "lab=eth1"})
	if err != nil || len(got) != 2 || got["vlan30"] != "ens3.30" || got["lab"] != "eth1" {
		t.Fatalf("parseParents: %v %v", got, err)
	}
	for _, bad := range [][]string{{"vlan30"}, {"=eth1"}, {"a=eth1", "a=eth2"}, {"a=this-name-is-too-long"}, {"a=x/y"}} {
		if _, err := parseParents(bad); err == nil {
			t.Errorf("parseParents(%q): no error", bad)
		}
	}
}
