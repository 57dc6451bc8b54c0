package notify

import (
	"context"
	"slices"
	"sync"
	"time"
)

// StopTimeout bounds each script run at shutdown (keepalived gives them
// one second before it kills them).
const StopTimeout = time.Second

// Stopping runs the scripts keepalived 2.2.7 runs when it shuts down and
// removes the IPVS services of virtual servers that have `omega` set
// (check/ipwrapper.c clear_services): for each virtual server in vsIDs,
// notify_down of every real server that is up (unless realServers is
// false: keepalived's full flush, lvs_flush_on_stop without an argument,
// runs only the quorum scripts), then quorum_down. They run at once, each
// bounded by StopTimeout (SIGTERM, then SIGKILL after the grace period),
// and Stopping returns when all have ended. The caller decides when
// keepalived would: lvsprobe leaves the table in place on stop unless
// lvs_flush_on_stop is set, as keepalived --dont-release-ipvs does.
func (r *Runner) Stopping(vsIDs []string, realServers bool) {
	var jobs []job
	r.mu.Lock()
	if realServers {
		for k, e := range r.rs {
			up, ok := r.health[k]
			if !ok {
				up = e.initial
			}
			if up && e.down != nil && slices.Contains(vsIDs, k.VirtualServer) {
				jobs = append(jobs, job{kind: NotifyDown, target: k.String(), cmd: e.down})
				r.health[k] = false
			}
		}
	}
	for _, id := range vsIDs {
		if e := r.vs[id]; e != nil && e.down != nil {
			jobs = append(jobs, job{kind: QuorumDown, target: id, cmd: e.down})
		}
	}
	r.mu.Unlock()
	o := execOptions{timeout: StopTimeout, grace: r.opts.Grace}
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Go(func() {
			r.runJobWith(context.Background(), j, o)
		})
	}
	wg.Wait()
}
