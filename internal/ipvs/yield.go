package ipvs

// A full pass (Reconcile, and Run's resync every ResyncInterval) reads,
// computes and compares the whole owned table: about 14 ms of CPU at
// 10,000 real servers. The daemon runs it on the same Go scheduler as the
// check scheduler, and with one P (lvsprobe on a CPU of its own,
// GOMAXPROCS=1) a pass that never yields holds the dispatch loop up until
// the runtime preempts it (10 ms): checks due meanwhile start 10–15 ms
// late, every resync. So a pass yields its P (Reconciler.yield,
// runtime.Gosched) after reading each service's destinations and after
// comparing and writing each service: a due check waits for one
// service's share of the pass, not for the whole table. Computing the
// desired table (under r.mu) does not yield: a goroutine parked while
// holding r.mu would hold up SetHealth.
