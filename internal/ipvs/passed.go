package ipvs

// Passed returns a channel closed when the first reconcile pass has
// finished (written what it could; its errors are retried by later
// passes): the moment a daemon tells its service manager it is ready.
func (r *Reconciler) Passed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.passed == nil {
		r.passed = make(chan struct{})
		if r.passDone {
			close(r.passed)
		}
	}
	return r.passed
}

// markPassed records that a pass finished and wakes Passed's waiters
// the first time.
func (r *Reconciler) markPassed() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.passDone {
		return
	}
	r.passDone = true
	if r.passed != nil {
		close(r.passed)
	}
}
