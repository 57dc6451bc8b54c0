//go:build linux

package ipvs

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// TestKernelReconcilerIncremental: incremental passes on real IPVS leave
// the kernel's table where full passes over a dry-run table leave theirs,
// and the incremental reconciler's cache is the kernel's table, after
// every batch of random health and weight changes (the configuration
// kind with every option of TestIncrementalPassesMatchFullPasses).
func TestKernelReconcilerIncremental(t *testing.T) {
	requireIPVS(t)
	k, done := kernelInNewNetNS(t)
	defer done()
	kind := randomConfigKind{quorum: true, sorry: true, inhibit: true, alpha: true, shared: true, dr: true, weighted: true}
	for seed := range uint64(3) {
		rng := rand.New(rand.NewPCG(seed, 0x1b5))
		cfg := randomConfig(rng, kind)
		cfg.Global.LVSFlushOnStop = "VS"
		inc := NewReconciler(k, cfg, ReconcilerOptions{})
		dry := NewDryRun(nil, nil)
		full := NewReconciler(dry, cfg, ReconcilerOptions{})
		mustNil(t, inc.Apply(t.Context()))
		mustNil(t, full.Reconcile(t.Context()))
		var rss []config.RealServerKey
		for _, vs := range cfg.VirtualServers {
			for _, rs := range vs.RealServers {
				rss = append(rss, rs.Key(vs))
			}
		}
		for step := range 25 {
			for range 1 + rng.IntN(3) {
				key := rss[rng.IntN(len(rss))]
				if rng.IntN(4) == 0 {
					w := rng.IntN(5)
					inc.SetWeight(key, w)
					full.SetWeight(key, w)
					continue
				}
				up := rng.IntN(2) == 0
				inc.SetHealth(key, up)
				full.SetHealth(key, up)
			}
			mustNil(t, inc.Apply(t.Context()))
			mustNil(t, full.Reconcile(t.Context()))
			where := fmt.Sprintf("seed %d step %d", seed, step)
			want := tableDump(t, dry)
			if diff := cmp.Diff(want, tableDump(t, k)); diff != "" {
				t.Fatalf("%s: kernel table (-full on dry run +incremental on the kernel):\n%s", where, diff)
			}
			if diff := cmp.Diff(want, cacheDump(inc.cache)); diff != "" {
				t.Fatalf("%s: incremental cache (-table +cache):\n%s", where, diff)
			}
		}
		if st := inc.Stats(); st.Partial != 25 {
			t.Fatalf("seed %d: %d of %d passes incremental, want 25", seed, st.Partial, st.Passes)
		}
		mustNil(t, inc.flushOnStop(t.Context()))
		if got := tableDump(t, k); len(got) != 0 {
			t.Fatalf("seed %d: table after lvs_flush_on_stop: %q", seed, got)
		}
	}
}
