package ipvs

import (
	"context"
	"slices"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// Incremental passes. A health or weight change alters the desired
// services of one virtual server only, so the pass Run makes for it
// recomputes those (stepLocked, the step a full pass runs for every
// virtual server) and compares them with the cached table, not the whole
// table: at 10,000 real servers the difference is one virtual server's
// real servers instead of all of them (docs/benchmarks.md §11).
//
// The result is the full pass's: a virtual server that is not dirty has
// the same health, weights and configuration as when the last pass built
// it, and quorumNext is a fixed point for an unchanged sum, so building
// it again would give the services the cache already holds. Whatever
// changes more than health and weights makes the next pass a full one:
// a read (Reconcile, resync), a configuration Update, a write that failed
// (the cache is dropped, and a target backing off keeps later passes
// full until it succeeds), and a retired service not yet deleted.

// vsIndex finds the virtual servers of a configuration that a change of
// one of them concerns.
type vsIndex struct {
	byID map[string]int32 // index in Config.VirtualServers of the first virtual server with that ID
	root []int32          // per virtual server, its group: the virtual servers sharing a service or an ID with it, transitively
	// groups lists the members of every group of more than one, in
	// configuration order. Such virtual servers fill the same services,
	// so they are built together.
	groups map[int32][]int32
}

// newVSIndex indexes cfg.
func newVSIndex(cfg *config.Config) *vsIndex {
	n := len(cfg.VirtualServers)
	x := &vsIndex{byID: make(map[string]int32, n), root: make([]int32, n)}
	for i := range x.root {
		x.root[i] = int32(i)
	}
	find := func(i int32) int32 {
		for x.root[i] != i {
			x.root[i] = x.root[x.root[i]]
			i = x.root[i]
		}
		return i
	}
	union := func(i, j int32) {
		i, j = find(i), find(j)
		if i != j {
			x.root[max(i, j)] = min(i, j)
		}
	}
	owner := make(map[config.ServiceKey]int32, n) // service to the first virtual server filling it
	for i, vs := range cfg.VirtualServers {
		i := int32(i)
		if j, ok := x.byID[vs.ID()]; ok {
			union(i, j)
		} else {
			x.byID[vs.ID()] = i
		}
		for _, k := range serviceKeys(vs) {
			id := serviceID(k)
			if j, ok := owner[id]; ok {
				union(i, j)
			} else {
				owner[id] = i
			}
		}
	}
	for i := range x.root {
		r := find(int32(i))
		x.root[i] = r // affected reads it without find
		if r != int32(i) {
			if x.groups == nil {
				x.groups = make(map[int32][]int32)
			}
			if len(x.groups[r]) == 0 {
				x.groups[r] = append(x.groups[r], r)
			}
			x.groups[r] = append(x.groups[r], int32(i))
		}
	}
	return x
}

// affected returns, in configuration order, the indexes of the virtual
// servers to build again when those with the IDs in dirty changed. IDs
// the configuration does not have are ignored.
func (x *vsIndex) affected(dirty map[string]struct{}) []int32 {
	out := make([]int32, 0, len(dirty))
	for id := range dirty {
		i, ok := x.byID[id]
		if !ok {
			continue
		}
		if g, ok := x.groups[x.root[i]]; ok {
			out = append(out, g...)
		} else {
			out = append(out, i)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// incrementalLocked reports whether the next pass, if it does not read
// the table, may build only the dirty virtual servers: the last pass was
// clean (the caller checks r.cache), the configuration has not changed
// since, and no write is waiting for a retry. r.mu must be held.
func (r *Reconciler) incrementalLocked() bool {
	return r.started && !r.allDirty && r.desired != nil && len(r.retired) == 0 && len(r.retry.failing) == 0
}

// applyDirty runs an incremental pass when incrementalLocked allows it,
// and then reports done. It builds the dirty virtual servers' services,
// puts them in the cached table (which is r.desired) in place of the old
// entries, and writes the difference between the new and the old
// entries. r.pass must be held and r.cache set.
func (r *Reconciler) applyDirty(ctx context.Context) (done bool, err error) {
	actual := r.cache
	r.mu.Lock()
	if !r.incrementalLocked() {
		r.mu.Unlock()
		return false, nil
	}
	r.stats.Passes++
	r.stats.Partial++
	if r.index == nil {
		r.index = newVSIndex(r.cfg)
	}
	vss := r.index.affected(r.dirty)
	clear(r.dirty)
	want := make(table, len(vss))
	for _, i := range vss {
		r.stepLocked(want, r.cfg.VirtualServers[i], actual)
	}
	// The old entries leave the shared table before the writes mutate
	// them: readers of r.desired (under r.mu) see the new ones only.
	have := make(table, len(want))
	for id, ts := range want {
		if old := actual[id]; old != nil {
			have[id] = old
		}
		actual[id] = ts
		r.desired[id] = ts
	}
	r.mu.Unlock()

	r.cache = nil // until this pass has written without a failure
	// No write is backing off (incrementalLocked), so none is deferred;
	// if one were, have holds only the dirty services: no cache.
	return true, r.finishPass(ctx, want, have, nil, actual, nil, nil)
}
