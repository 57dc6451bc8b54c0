package ipvs

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"syscall"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// apply writes the difference between desired and actual, then deletes
// the retired services still present. Within a service, destinations are
// deleted first, then updated, then added, each in address order. Each
// successful write is applied to actual too, so that after a clean pass
// actual is the table as it now is.
func (r *Reconciler) apply(ctx context.Context, desired, actual table, retired []config.ServiceKey) []error {
	var errs []error
	for _, id := range sortedServiceIDs(desired) {
		if ctx.Err() != nil {
			return append(errs, ctx.Err())
		}
		want := desired[id]
		have := actual[id]
		switch {
		case have == nil:
			if err := r.do(ctx, OpAddService, want.svc.ServiceKey, nil, func() error { return r.addService(ctx, want.svc) }); err != nil {
				errs = keep(errs, err)
				continue // its destinations cannot go in yet
			}
			have = actual.service(want.svc)
		case !sameService(want.svc, have.svc):
			if err := r.do(ctx, OpUpdateService, want.svc.ServiceKey, nil, func() error { return r.updateService(ctx, want.svc) }); err != nil {
				errs = keep(errs, err)
			} else {
				have.svc = want.svc
			}
		}
		errs = append(errs, r.applyDests(ctx, want.svc.ServiceKey, want.dests, have.dests)...)
		r.yield()
	}
	slices.SortFunc(retired, compareServiceKeys)
	for _, id := range retired {
		have := actual[id]
		if have == nil {
			r.mu.Lock()
			delete(r.retired, id)
			r.mu.Unlock()
			continue
		}
		err := r.do(ctx, OpDeleteService, have.svc.ServiceKey, nil, func() error { return r.deleteService(ctx, have.svc.ServiceKey) })
		if err != nil {
			errs = keep(errs, err)
			continue
		}
		delete(actual, id)
		r.mu.Lock()
		delete(r.retired, id)
		r.mu.Unlock()
	}
	return errs
}

// applyDests writes the destination changes of one service, and applies
// the successful ones to have.
func (r *Reconciler) applyDests(ctx context.Context, svc config.ServiceKey, want, have destMap) []error {
	var errs []error
	var del, upd, add []destKey
	for k := range have {
		if _, ok := want[k]; !ok {
			del = append(del, k)
		}
	}
	for k, d := range want.all() {
		h, ok := have.get(k)
		switch {
		case !ok:
			add = append(add, k)
		case !sameDestination(d, h):
			upd = append(upd, k)
		}
	}
	for _, group := range [][]destKey{del, upd, add} {
		slices.SortFunc(group, compareDestKeys)
	}
	for _, k := range del {
		d, _ := have.get(k)
		if err := r.do(ctx, OpDeleteDestination, svc, &k, func() error { return r.deleteDest(ctx, svc, d) }); err != nil {
			errs = keep(errs, err)
		} else {
			delete(have, k)
		}
	}
	put := func(kind OpKind, keys []destKey, write func(context.Context, config.ServiceKey, Destination) error) {
		for _, k := range keys {
			d, _ := want.get(k)
			if err := r.do(ctx, kind, svc, &k, func() error { return write(ctx, svc, d) }); err != nil {
				errs = keep(errs, err)
			} else {
				have[k] = want[k]
			}
		}
	}
	put(OpUpdateDestination, upd, r.updateDest)
	put(OpAddDestination, add, r.addDest)
	return errs
}

// errDeferred is returned by do for a write not tried because its target
// is backing off; it was reported when it failed.
var errDeferred = errors.New("deferred: backing off")

// keep appends err to errs unless it is nil or errDeferred.
func keep(errs []error, err error) []error {
	if err == nil || err == errDeferred {
		return errs
	}
	return append(errs, err)
}

// do runs one write unless its target is backing off, and keeps the
// backoff and the failure count. It returns the write's error, or
// errDeferred.
func (r *Reconciler) do(ctx context.Context, kind OpKind, svc config.ServiceKey, dest *destKey, write func() error) error {
	t := opTarget{svc: serviceID(svc)}
	if dest != nil {
		t.dest, t.isDest = *dest, true
	}
	r.mu.Lock()
	ready := r.retry.ready(t, r.now())
	if !ready {
		r.stats.Deferred++
	}
	r.mu.Unlock()
	if !ready {
		return errDeferred
	}
	err := write()
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		r.retry.succeed(t)
		return nil
	}
	delay := r.retry.fail(t, r.now())
	target := svc.String()
	if svc == (config.ServiceKey{}) {
		target = "connection timeouts"
	}
	if dest != nil {
		target += " -> " + addrPort(dest.Addr, dest.Port)
	}
	r.log.Warn("ipvs write failed; will retry", "op", string(kind), "target", target, "retry_in", delay, "error", err)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("%s %s: %w", strings.ReplaceAll(string(kind), "_", " "), target, err)
}

// count records one backend write and its outcome.
func (r *Reconciler) count(kind OpKind, err error) {
	r.mu.Lock()
	if err != nil {
		r.stats.Errors++
	} else {
		r.stats.Ops[kind]++
	}
	r.mu.Unlock()
}

// The writes below absorb the races keepalived's ipvs_talk absorbs (a
// human running ipvsadm between our read and our write): an add that
// finds the entry present becomes an edit, an edit that finds it gone
// becomes an add, a delete of something already gone succeeds.

func (r *Reconciler) addService(ctx context.Context, s Service) error {
	err := r.b.AddService(ctx, s)
	if r.raced(OpAddService, err, syscall.EEXIST) {
		err = r.b.UpdateService(ctx, s)
		r.count(OpUpdateService, err)
	}
	return err
}

func (r *Reconciler) updateService(ctx context.Context, s Service) error {
	err := r.b.UpdateService(ctx, s)
	if r.raced(OpUpdateService, err, syscall.ENOENT, syscall.ESRCH) {
		err = r.b.AddService(ctx, s)
		r.count(OpAddService, err)
	}
	return err
}

func (r *Reconciler) deleteService(ctx context.Context, k config.ServiceKey) error {
	err := r.b.DeleteService(ctx, k)
	if r.raced(OpDeleteService, err, syscall.ENOENT, syscall.ESRCH) {
		return nil
	}
	return err
}

func (r *Reconciler) addDest(ctx context.Context, svc config.ServiceKey, d Destination) error {
	err := r.b.AddDestination(ctx, svc, d)
	if r.raced(OpAddDestination, err, syscall.EEXIST) {
		err = r.b.UpdateDestination(ctx, svc, d)
		r.count(OpUpdateDestination, err)
	}
	return err
}

func (r *Reconciler) updateDest(ctx context.Context, svc config.ServiceKey, d Destination) error {
	err := r.b.UpdateDestination(ctx, svc, d)
	if r.raced(OpUpdateDestination, err, syscall.ENOENT) {
		err = r.b.AddDestination(ctx, svc, d)
		r.count(OpAddDestination, err)
	}
	return err
}

func (r *Reconciler) deleteDest(ctx context.Context, svc config.ServiceKey, d Destination) error {
	err := r.b.DeleteDestination(ctx, svc, d)
	if r.raced(OpDeleteDestination, err, syscall.ENOENT) {
		return nil
	}
	return err
}

// raced counts a write whose error is nil or not one of races, and
// reports whether err is one of races (then it counts a race, not an
// error, and the caller absorbs it).
func (r *Reconciler) raced(kind OpKind, err error, races ...syscall.Errno) bool {
	for _, e := range races {
		if errors.Is(err, e) {
			r.mu.Lock()
			r.stats.Races++
			r.mu.Unlock()
			return true
		}
	}
	r.count(kind, err)
	return false
}

// flushAtStart implements lvs_flush. keepalived flushes the whole table;
// lvsprobe never touches a service it does not own, so it deletes only
// the services of its configuration found in the table (they are then
// rebuilt from scratch in the same pass, health unknown: alpha real
// servers stay out). It empties actual accordingly.
func (r *Reconciler) flushAtStart(ctx context.Context, actual table) []error {
	var errs []error
	deleted := 0
	for _, id := range sortedServiceIDs(actual) {
		k := actual[id].svc.ServiceKey
		if err := r.deleteService(ctx, k); err != nil {
			errs = append(errs, fmt.Errorf("lvs_flush: delete service %s: %w", k, err))
			continue
		}
		delete(actual, id)
		deleted++
	}
	r.log.Info("lvs_flush: deleted the configured services found at start", "services", deleted)
	return errs
}

// flushOnStop implements lvs_flush_on_stop when Run stops:
//   - unset (""): the table is left as it is, so that the next start
//     adopts it without churn (keepalived's --dont-release-ipvs);
//   - "RS": each owned destination is deleted, then each owned service
//     (keepalived's default clear_services);
//   - "VS", and any other value (keepalived's bare lvs_flush_on_stop means
//     a full flush): each owned service is deleted, destinations with it.
//
// Services lvsprobe does not own are never touched, in every mode.
func (r *Reconciler) flushOnStop(ctx context.Context) error {
	r.pass.Lock()
	defer r.pass.Unlock()
	r.cache = nil
	r.mu.Lock()
	mode := strings.ToUpper(r.cfg.Global.LVSFlushOnStop)
	owned := configServiceIDs(r.cfg)
	maps.Copy(owned, r.retired)
	r.mu.Unlock()
	if mode == "" {
		return nil
	}
	actual, err := r.readActual(ctx, owned)
	if err != nil {
		return fmt.Errorf("lvs_flush_on_stop: %w", err)
	}
	var errs []error
	for _, id := range sortedServiceIDs(actual) {
		ts := actual[id]
		k := ts.svc.ServiceKey
		if mode == "RS" {
			dks := slices.SortedFunc(maps.Keys(ts.dests), compareDestKeys)
			for _, dk := range dks {
				d, _ := ts.dests.get(dk)
				if err := r.deleteDest(ctx, k, d); err != nil {
					errs = append(errs, fmt.Errorf("lvs_flush_on_stop: delete destination %s -> %s: %w", k, addrPort(dk.Addr, dk.Port), err))
				}
			}
		}
		if err := r.deleteService(ctx, k); err != nil {
			errs = append(errs, fmt.Errorf("lvs_flush_on_stop: delete service %s: %w", k, err))
		}
	}
	r.log.Info("lvs_flush_on_stop applied", "mode", mode, "services", len(actual))
	return errors.Join(errs...)
}
