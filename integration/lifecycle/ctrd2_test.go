package lifecycle

import (
	"testing"

	tl "github.com/underlay/underlay/integration/testlab"
)

// containerd2 returns containerd 2.x, building containerd, its runc shim
// and ctr into the cache (UNDERLAY_CTRD2_CACHE, default
// /var/cache/underlay-ctrd2/<version>) unless they are there already; see
// testlab.Containerd2Dir.
func containerd2(t *testing.T) flavor {
	t.Helper()
	return flavor{name: "containerd " + tl.Containerd2Version, dir: tl.Containerd2Dir(t), v3: true}
}
