package synprobe

import "time"

// ringHold is how much time's worth of answers, at the configured rate
// cap, the eBPF receiver's ring buffer holds. The send loop drains the
// ring every time it wakes (at least every send tick while answers flow)
// and after every batch it sends, so between two drains the ring takes
// the answers of about one tick's probes; the rest is slack for a
// drain delayed by a busy CPU or a long round trip. Answers that do not
// fit are counted (lvsprobe_synprobe_kernel_lost_total) and their probes
// settle as misses. The ring was 4 MiB (8 MiB of resident memory: the
// kernel maps it twice) until this was measured (docs/benchmarks.md §8.9).
const ringHold = 15 * time.Millisecond

// ringRecords is the number of answers the ring buffer holds for cfg.
func ringRecords(cfg Config) int {
	return max(int(int64(cfg.PPS)*int64(ringHold)/int64(time.Second)), 4*cfg.Batch)
}
