package prober

import (
	"math"
	"sync/atomic"
	"time"
)

// Lateness buckets: upper bounds 1µs·2^(i/4), about 19 % apart, from 1 µs
// to over 100 s; the last bucket takes everything later.
const (
	latenessBucketsPerOctave = 4
	latenessBuckets          = 4*27 + 1
)

// latenessBound returns the upper bound of bucket i.
func latenessBound(i int) time.Duration {
	return time.Duration(float64(time.Microsecond) * math.Exp2(float64(i)/latenessBucketsPerOctave))
}

// latenessHistogram counts how late checks start (actual start − due
// time). Observe is lock-free and safe for concurrent use.
type latenessHistogram struct {
	counts [latenessBuckets]atomic.Uint64
	sum    atomic.Int64 // nanoseconds
	max    atomic.Int64 // nanoseconds
}

// observe records one check that started d after it was due.
func (h *latenessHistogram) observe(d time.Duration) {
	d = max(d, 0)
	i := 0
	if d > time.Microsecond {
		i = int(math.Ceil(math.Log2(float64(d)/float64(time.Microsecond)) * latenessBucketsPerOctave))
		// Rounding can land one bucket low of the bound d needs.
		for i < latenessBuckets-1 && latenessBound(i) < d {
			i++
		}
		i = min(i, latenessBuckets-1)
	}
	h.counts[i].Add(1)
	h.sum.Add(int64(d))
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			break
		}
	}
}

// snapshot copies the histogram.
func (h *latenessHistogram) snapshot() Lateness {
	var l Lateness
	l.Buckets = make([]LatenessBucket, latenessBuckets)
	for i := range l.Buckets {
		c := h.counts[i].Load()
		l.Buckets[i] = LatenessBucket{UpperBound: latenessBound(i), Count: c}
		l.Count += c
	}
	l.Buckets[latenessBuckets-1].UpperBound = time.Duration(math.MaxInt64)
	l.Sum = time.Duration(h.sum.Load())
	l.Max = time.Duration(h.max.Load())
	return l
}

// LatenessBucket is one bucket of a [Lateness] histogram: Count checks
// started at most UpperBound late (and later than the bucket before).
type LatenessBucket struct {
	UpperBound time.Duration
	Count      uint64
}

// Lateness is a snapshot of how late the scheduler starts checks: the
// actual start of each attempt minus the time it was due. Buckets are
// about 19 % wide, so quantiles are exact to within one bucket and never
// under-reported.
type Lateness struct {
	Count   uint64           // checks started
	Sum     time.Duration    // total lateness
	Max     time.Duration    // worst lateness since the scheduler was made (not reduced by Sub)
	Buckets []LatenessBucket // non-cumulative counts, ascending bounds
}

// Quantile returns the upper bound of the bucket holding the q-quantile
// (0 < q ≤ 1), capped at Max; 0 when nothing was observed.
func (l Lateness) Quantile(q float64) time.Duration {
	if l.Count == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(l.Count)))
	rank = min(max(rank, 1), l.Count)
	var seen uint64
	for _, b := range l.Buckets {
		seen += b.Count
		if seen >= rank {
			return min(b.UpperBound, l.Max)
		}
	}
	return l.Max
}

// Sub returns the checks observed since prev, an earlier snapshot of the
// same scheduler (Max stays the overall maximum).
func (l Lateness) Sub(prev Lateness) Lateness {
	d := Lateness{Count: l.Count - prev.Count, Sum: l.Sum - prev.Sum, Max: l.Max}
	d.Buckets = make([]LatenessBucket, len(l.Buckets))
	for i, b := range l.Buckets {
		d.Buckets[i] = b
		if i < len(prev.Buckets) {
			d.Buckets[i].Count -= prev.Buckets[i].Count
		}
	}
	return d
}
