package store

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/underlay/underlay/daemon/api"
)

// Intents take a slot each in this boot's file: an ended one's slot is
// reused, what is not ended survives a restart of underlayd (the file is
// reopened), a torn slot is dropped, and the resolver's names are not
// kept (they undo nothing).
func TestIntentSlots(t *testing.T) {
	dir := t.TempDir()
	bootFile := filepath.Join(t.TempDir(), "boot_id")
	old := bootIDPath
	bootIDPath = bootFile
	t.Cleanup(func() { bootIDPath = old })
	if err := os.WriteFile(bootFile, []byte("44444444-dddd\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "intents-44444444-dddd")
	open := func() *Store {
		t.Helper()
		s, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	names := func(s *Store) []string {
		t.Helper()
		in, err := s.Intents()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, ep := range in {
			if len(ep.Names) != 0 {
				t.Errorf("intent %s kept names %v", ep.TempName, ep.Names)
			}
			out = append(out, ep.TempName+"/"+ep.ContainerID)
		}
		sort.Strings(out)
		return out
	}
	size := func() int64 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	s := open()
	for _, n := range []string{"ula", "ulb", "ulc"} {
		if err := s.BeginIntent(api.Endpoint{ContainerID: "c-" + n, TempName: n, Names: []string{"web"}}); err != nil {
			t.Fatal(err)
		}
	}
	s.EndIntent(api.Endpoint{TempName: "ulb"})
	s.EndIntent(api.Endpoint{TempName: "nosuch"}) // never begun: nothing happens
	if err := s.BeginIntent(api.Endpoint{ContainerID: "c-uld", TempName: "uld"}); err != nil {
		t.Fatal(err)
	}
	// Rewriting an intent keeps its slot.
	if err := s.BeginIntent(api.Endpoint{ContainerID: "c-uld2", TempName: "uld"}); err != nil {
		t.Fatal(err)
	}
	if got := size(); got > 3*intentSlot {
		t.Errorf("file of %d bytes for 3 intents at once, want at most %d: ended slots are not reused", got, 3*intentSlot)
	}
	same := func(what string, got, want []string) {
		t.Helper()
		if len(got) != len(want) {
			t.Errorf("%s: %v, want %v", what, got, want)
			return
		}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("%s: %v, want %v", what, got, want)
				return
			}
		}
	}
	same("intents", names(s), []string{"ula/c-ula", "ulc/c-ulc", "uld/c-uld2"})
	if err := s.BeginIntent(api.Endpoint{TempName: "a/b"}); err == nil {
		t.Error("an intent named a/b was recorded")
	}
	s.Close()

	// underlayd restarts: the intents are there. Slot 2 is torn.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0, 0, 0, 9, '{', 'x'}, 2*intentSlot); err != nil {
		t.Fatal(err)
	}
	f.Close()
	s = open()
	same("intents after a restart with a torn slot", names(s), []string{"ula/c-ula", "uld/c-uld2"})
	s.EndIntent(api.Endpoint{TempName: "ula"})
	s.EndIntent(api.Endpoint{TempName: "uld"})
	same("intents once ended", names(s), nil)
	s.Close()
	s = open()
	defer s.Close()
	same("intents after a second restart", names(s), nil)
}
