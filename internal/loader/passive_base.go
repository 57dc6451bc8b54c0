package loader

import "time"

// clientBase is the baseline [passivePoller] diffs a real server's client
// counters against: the low 32 bits of each count (the latency sum whole),
// 144 bytes instead of the kernel record's 320 (3 MB at 10,000 real
// servers, docs/benchmarks.md §8.9). A count's change between two reads
// is its new low 32 bits minus the old ones, modulo 2^32: exact while a
// counter grows by less than 2^31 between two reads (a read every
// PollInterval). A difference of 2^31 or more is taken for a counter
// reset below the baseline and counts as 0, as [minus] does.
type clientBase struct {
	syns, synRetrans, synacks, rsts, refused, latCount uint32
	latSum                                             uint64
	lat                                                [LatencyBuckets]uint32
}

// same reports whether v holds the counts of b. The programs update a
// latency bucket, its count and its sum together, so the scalar counters
// decide: the histogram is not compared.
func (b *clientBase) same(v *passivePassiveRsStats) bool {
	return uint32(v.Syns) == b.syns && uint32(v.SynRetrans) == b.synRetrans && uint32(v.Synacks) == b.synacks &&
		uint32(v.Rsts) == b.rsts && uint32(v.Refused) == b.refused && uint32(v.LatCount) == b.latCount
}

// set makes v the baseline.
func (b *clientBase) set(v *passivePassiveRsStats) {
	b.syns, b.synRetrans, b.synacks = uint32(v.Syns), uint32(v.SynRetrans), uint32(v.Synacks)
	b.rsts, b.refused, b.latCount = uint32(v.Rsts), uint32(v.Refused), uint32(v.LatCount)
	b.latSum = v.LatSumNs
	for i, n := range v.Lat {
		b.lat[i] = uint32(n)
	}
}

// delta returns v's counters minus the baseline.
func (b *clientBase) delta(v *passivePassiveRsStats) ClientCounters {
	c := ClientCounters{
		SYNs: minus32(v.Syns, b.syns), SYNRetransmits: minus32(v.SynRetrans, b.synRetrans),
		SYNACKs: minus32(v.Synacks, b.synacks), Resets: minus32(v.Rsts, b.rsts), Refused: minus32(v.Refused, b.refused),
		LatencySum: time.Duration(minus(v.LatSumNs, b.latSum)),
	}
	for i, n := range v.Lat {
		c.Latency[i] = minus32(n, b.lat[i])
	}
	return c
}

// minus32 is minus for a counter whose baseline keeps its low 32 bits.
func minus32(a uint64, b uint32) uint64 {
	d := uint32(a) - b
	if d >= 1<<31 {
		return 0
	}
	return uint64(d)
}
