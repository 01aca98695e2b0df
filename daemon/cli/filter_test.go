package main

import (
	"testing"

	"github.com/underlay/underlay/daemon/api"
)

func TestFilters(t *testing.T) {
	n := api.Network{ID: "abc123", Name: "pub_net", Driver: "macvlan", Labels: map[string]string{"team": "blue", "lab": ""}}
	for _, c := range []struct {
		filters []string
		want    bool
	}{
		{nil, true},
		{[]string{"label=team"}, true},
		{[]string{"label=team=blue"}, true},
		{[]string{"label=team=red"}, false},
		{[]string{"label=lab"}, true},
		{[]string{"label=lab="}, true},
		{[]string{"label=owner"}, false},
		{[]string{"driver=macvlan", "name=pub"}, true},
		{[]string{"driver=ipvlan"}, false},
		{[]string{"scope=local", "id=abc"}, true},
		{[]string{"scope=global"}, false},
		{[]string{"id=bc"}, false},
	} {
		fs, err := parseFilters(c.filters)
		if err != nil {
			t.Fatalf("%v: %v", c.filters, err)
		}
		if got := matches(n, fs); got != c.want {
			t.Errorf("%v: %v, want %v", c.filters, got, c.want)
		}
	}
	for _, bad := range []string{"label", "colour=red", "driver="} {
		if _, err := parseFilters([]string{bad}); err == nil {
			t.Errorf("--filter %s: no error", bad)
		}
	}
}
