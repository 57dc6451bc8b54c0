package prober

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// unit is one scheduled check: every checker block with the same Key and
// the same timing, run once for all the real servers that use it.
//
// There is one per checked endpoint (10,000 at 10,000 real servers): its
// fields are ordered and sized to keep it at 384 bytes.
type unit struct {
	checker Checker
	block   *config.Checker // the first block of the current configuration that asks for it (its position is logged); its endpoint is u.endpoint()
	pol     *policy         // shared by the units with the same timing (plan.pols)
	state   checkState
	users   []*realServer
	epNext  *unit // the next unit connecting to the same endpoint (epIndex); set under the lock when the index is built

	due     time.Duration // when it is due, as an offset from the due queue's epoch (dueQueue.dueOf)
	index   int32         // position in the due queue, -1 while an attempt runs (or once removed)
	logAll  bool          // log_all_failures on any block that shares it
	removed bool          // gone from the configuration; an attempt still running is discarded
	hasLast bool          // last and lastAt hold a result
	async   bool          // checker is an asyncChecker: attempts run without a goroutine (scheduler_async.go)

	last   Result
	lastAt time.Duration // when last completed, as an offset from the due queue's epoch
	wt     WeightChange  // what the unit asks of its real servers' weight now (scheduler_weight.go)
	fin    finished      // the result of the attempt that just ended, until it is recorded (scheduler_complete.go)
}

// endpoint is where u connects (endpointOf its block), invalid when it
// has no endpoint. Derived rather than kept: every block a unit is given
// has the same endpoint (it is part of the unit's key), and 32 bytes a
// unit were 0.3 MB at 10,000. The caller holds the scheduler's lock.
func (u *unit) endpoint() netip.AddrPort {
	a, _ := endpointOf(u.block)
	return a
}

// timeout is the whole-exchange timeout of u's attempts. The caller
// holds the scheduler's lock (a reload replaces u.block).
func (u *unit) timeout() time.Duration {
	if t, ok := u.checker.(interface{ attemptTimeout() time.Duration }); ok {
		return t.attemptTimeout() // MISC_CHECK: misc_timeout
	}
	if u.block.ConnectTimeout > 0 {
		return u.block.ConnectTimeout
	}
	return config.DefaultConnectTimeout
}

// realServer is one real server under one virtual server, with the units
// that decide its health.
type realServer struct {
	key     config.RealServerKey
	units   []*unit // distinct
	failing int32   // units that are down (int32: packed with the two flags, 96 bytes instead of 104)
	up      bool    // the health last reported
	verdict bool    // every unit has run since the real server appeared
	iweight int     // configured weight
	weight  int     // effective weight last handed to OnWeight (iweight until a check asks otherwise)
}

// allRun reports whether every unit of srv has reached a verdict.
func (srv *realServer) allRun() bool {
	for _, u := range srv.units {
		if !u.state.hasRun {
			return false
		}
	}
	return true
}

// plan is the scheduler's view of one configuration.
type plan struct {
	units   map[unitID]*unit
	servers []*realServer // configuration order
	byKey   map[config.RealServerKey]*realServer
}

// unitID is what makes two checker blocks one check: the checker's own
// Key (type, endpoint, options) and every setting of its state machine,
// the latter in 33 bytes of binary rather than ~60 of text (10,000 of
// them are kept).
type unitID string

// unitKey returns the unitID of ck run with p.
func unitKey(ck Checker, p policy) unitID {
	b := make([]byte, 0, 64)
	b = append(b, ck.Key()...)
	b = append(b, 0)
	for _, v := range [...]int64{int64(p.delayLoop), int64(p.retry), int64(p.delayBeforeRetry), int64(p.warmup)} {
		b = binary.LittleEndian.AppendUint64(b, uint64(v))
	}
	var flags byte
	for i, f := range [...]bool{p.alpha, p.http, p.fastRecovery, p.ladderOnlyUp} {
		if f {
			flags |= 1 << i
		}
	}
	return unitID(append(b, flags))
}

// planEntry is one checker block of one real server, with its checker
// built.
type planEntry struct {
	server config.RealServerKey
	weight int             // the real server's configured weight
	block  *config.Checker // nil for a real server without checkers
	ck     Checker
	pol    policy
	key    unitID
}

// prepare builds the checker of every block of cfg. It touches no
// scheduler state, so it runs outside the scheduler's lock. All checker
// errors are returned together.
func prepare(cfg *config.Config, newChecker func(*config.Checker, CheckerOptions) (Checker, error), opts CheckerOptions) ([]planEntry, error) {
	var entries []planEntry
	var errs []error
	for _, vs := range cfg.VirtualServers {
		for _, rs := range vs.RealServers {
			key := rs.Key(vs)
			entries = append(entries, planEntry{server: key, weight: rs.Weight})
			for _, c := range rs.Checkers {
				ck, err := newChecker(c, opts)
				if err != nil {
					errs = append(errs, fmt.Errorf("real server %s: %w", key, err))
					continue
				}
				pol := policyOf(c)
				entries = append(entries, planEntry{server: key, weight: rs.Weight, block: c, ck: ck, pol: pol, key: unitKey(ck, pol)})
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return entries, nil
}

// assemble turns prepared entries into units and real servers. Units that
// old already runs (same unitKey) are carried over with their state and
// schedule; the new ones come back in fresh, not yet queued.
func assemble(entries []planEntry, old *plan) (p *plan, fresh []*unit) {
	p = &plan{units: map[unitID]*unit{}, byKey: map[config.RealServerKey]*realServer{}}
	pols := map[policy]*policy{} // one copy of each timing (a 40-byte policy in every unit was 0.4 MB at 10,000)
	for _, e := range entries {
		srv := p.byKey[e.server]
		if srv == nil {
			srv = &realServer{key: e.server, iweight: e.weight, weight: e.weight}
			p.byKey[e.server] = srv
			p.servers = append(p.servers, srv)
		}
		if e.block == nil {
			continue
		}
		u := p.units[e.key]
		if u == nil {
			if old != nil {
				u = old.units[e.key]
			}
			if u == nil {
				pol := pols[e.pol]
				if pol == nil {
					pol = new(policy)
					*pol = e.pol
					pols[e.pol] = pol
				}
				_, async := e.ck.(asyncChecker)
				u = &unit{checker: e.ck, block: e.block, pol: pol, state: newCheckState(e.pol), index: -1, async: async}
				fresh = append(fresh, u)
			}
			u.block = e.block // the position in the file now loaded
			u.users = u.users[:0]
			u.logAll = false
			p.units[e.key] = u
		}
		u.logAll = u.logAll || e.block.LogAllFailures
		if !containsUnit(srv.units, u) {
			srv.units = append(srv.units, u)
			u.users = append(u.users, srv)
		}
	}
	for _, srv := range p.servers {
		for _, u := range srv.units {
			if !u.state.up {
				srv.failing++
			}
		}
		srv.up = srv.failing == 0
	}
	return p, fresh
}

func containsUnit(us []*unit, u *unit) bool {
	for _, x := range us {
		if x == u {
			return true
		}
	}
	return false
}
