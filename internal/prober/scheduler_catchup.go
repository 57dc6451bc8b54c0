package prober

import "time"

// A late start is not carried into the next round.
//
// keepalived queues a checker's next attempt delay_loop after the end of
// the last one, so an attempt that started late pushes every later one
// back by as much. At 10,000 checks a second that feeds itself: checks
// held up together (a GC cycle, a burst of completions on a busy CPU)
// start together when the dispatcher gets to them, end together, and are
// due together again one delay_loop later, as a crowd denser than the
// dispatcher can start on time; the checks falling due meanwhile wait
// behind it and join it. A lateness timeline at 10,000 TCP_CHECKs
// (docs/benchmarks.md §17.1) showed it: after 15 s half of all 5 ms
// windows started no check, the others 100–250 (twice the mean rate),
// each crowd back a second later, 10–40 ms late again.
//
// So the next attempt is due delay after the end the attempt would have
// had if it had started on time (its end minus its lateness), by at most
// catchUpMax and a tenth of the delay: crowds dissolve into the
// staggered schedule they came from. The time between the end of one
// attempt and the start of the next is then the delay less the last
// attempt's lateness (at most 20 ms at delay_loop 1 s), where keepalived
// waits the whole delay; on average a check still runs once per
// delay_loop plus its duration, as keepalived's do. Lateness beyond the
// cap (a starved director) is carried on as keepalived does, so a
// director that cannot keep up is not asked for more.
const catchUpMax = 20 * time.Millisecond

// catchUp returns how much earlier than delay after its end an attempt
// that started late by lateness makes its unit's next attempt due.
func catchUp(lateness, delay time.Duration) time.Duration {
	if lateness <= 0 || delay <= 0 {
		return 0
	}
	return min(lateness, catchUpMax, delay/10)
}
