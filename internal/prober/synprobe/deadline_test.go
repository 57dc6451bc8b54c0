package synprobe

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestMissDeadline: a probe is declared missed when it is unanswered at
// the earlier of its successor's departure and its own departure plus its
// target's interval, once the receiver has drained past that deadline;
// at full rate that is the successor's departure as before, backed off
// (successors far apart) it is one interval after the probe left. An
// answer the kernel saw in time counts however late it is drained; one
// seen after the deadline but before the successor left still counts
// (the miss declared stands); each probe is settled once.
func TestMissDeadline(t *testing.T) {
	type step struct {
		op     string // send (at: departure), answer (gen, at: kernel time), drain (at: upTo), next, remove
		target string // "a" (interval 100) or "b" (interval 300)
		at     uint64
		gen    uint32
		err    error  // answer: the outcome
		misses int    // drain: misses declared so far
		next   uint64 // next: the earliest own deadline pending (0: none)
	}
	send := func(tg string, at uint64) step { return step{op: "send", target: tg, at: at} }
	drain := func(at uint64, misses int) step { return step{op: "drain", at: at, misses: misses} }
	ans := func(tg string, gen uint32, at uint64, err error) step {
		return step{op: "answer", target: tg, gen: gen, at: at, err: err}
	}
	for _, tt := range []struct {
		name    string
		steps   []step
		signals []string // target kind consecutive-misses @stamp
		rtt     uint64   // a's last RTT at the end (0: not checked)
	}{
		{"full rate: the successor's departure", []step{
			send("a", 100), send("a", 200), drain(200, 0), drain(201, 1), drain(300, 1), drain(301, 2),
		}, []string{"a miss 1 @200", "a miss 2 @300"}, 0},
		{"full rate, successor a tick early: its departure", []step{
			send("a", 100), send("a", 190), drain(191, 1), drain(1000, 2),
		}, []string{"a miss 1 @190", "a miss 2 @290"}, 0},
		{"backed off: an interval after it left", []step{
			send("a", 100), {op: "next", next: 200}, drain(200, 0), drain(201, 1), {op: "next"},
			send("a", 900), drain(901, 1), drain(1000, 1), drain(1001, 2),
		}, []string{"a miss 1 @200", "a miss 2 @1000"}, 0},
		{"backed off, answered in time, drained late", []step{
			send("a", 100), ans("a", 1, 199, nil), {op: "next"}, drain(5000, 0),
		}, []string{"a synack 0 @199"}, 99},
		{"backed off, answered in time, drained after the successor left", []step{
			send("a", 100), send("a", 900), ans("a", 1, 150, nil), drain(901, 0),
		}, []string{"a synack 0 @150"}, 50},
		{"answer after the deadline, before the successor: counts, the miss stands", []step{
			send("a", 100), drain(201, 1), ans("a", 1, 250, nil), ans("a", 1, 260, errDuplicate),
			send("a", 900), drain(901, 1), drain(2000, 2),
		}, []string{"a miss 1 @200", "a synack 0 @250", "a miss 1 @1000"}, 150},
		{"answer after the successor left: late, one miss at the earlier deadline", []step{
			send("a", 100), send("a", 900), ans("a", 1, 950, errLate), drain(951, 1),
		}, []string{"a miss 1 @200"}, 0},
		{"each interval in deadline order", []step{
			send("b", 100), send("a", 150), {op: "next", next: 250}, drain(251, 1), {op: "next", next: 400},
			drain(400, 1), drain(401, 2),
		}, []string{"a miss 1 @250", "b miss 1 @400"}, 0},
		{"answered probes leave the queue", []step{
			send("a", 100), send("b", 120), ans("a", 1, 101, nil), {op: "next", next: 420},
			ans("b", 1, 121, nil), {op: "next"}, drain(1000, 0),
		}, []string{"a synack 0 @101", "b synack 0 @121"}, 1},
		{"removed target: no miss", []step{
			send("a", 100), {op: "remove", target: "a"}, drain(1000, 0),
		}, nil, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := newBareProber(t)
			local := netip.MustParseAddr("198.18.0.1")
			tgs := map[string]*target{}
			for name, iv := range map[string]uint64{"a": 100, "b": 300} {
				addr := netip.AddrPortFrom(netip.MustParseAddr("198.18.0.2"), uint16(iv))
				tg := &target{addr: addr, path: &path{local: local}, interval: iv, next: math.MaxUint64}
				p.targets[addr] = tg
				p.dueAdd(tg)
				tgs[name] = tg
			}
			names := map[netip.AddrPort]string{tgs["a"].addr: "a", tgs["b"].addr: "b"}
			sent := map[string][]sent{}
			for i, s := range tt.steps {
				tg := tgs[s.target]
				switch s.op {
				case "send":
					// The successor leaves when the step says
					// (whatever the rate): due now, taken now.
					tg.next = s.at
					p.due.reschedule(tg)
					var bs batches
					bs.init(4, 4)
					p.collect(s.at, s.at, &bs, math.MaxInt)
					if bs.len() != 1 {
						t.Fatalf("step %d: %d probes sent, want 1", i, bs.len())
					}
					p.stampAt(bs.v4, s.at)
					tg.next = math.MaxUint64 // no more until a step sends it
					p.due.reschedule(tg)
					sent[s.target] = append(sent[s.target], tg.cur)
				case "answer":
					pr := sent[s.target][s.gen-1]
					seq := p.cookies.seq(local, tg.addr.Addr(), pr.lport, tg.addr.Port())
					a := answer{src: tg.addr.Addr(), dst: local, sport: tg.addr.Port(), dport: pr.lport, ack: seq + 1, flags: flagSYN | flagACK}
					if err := p.settle(s.at, &a); !errors.Is(err, s.err) {
						t.Fatalf("step %d: answer to probe %d at %d: %v, want %v", i, s.gen, s.at, err, s.err)
					}
				case "drain":
					p.settleMisses(s.at)
					if got := int(testutil.ToFloat64(p.m.misses)); got != s.misses {
						t.Fatalf("step %d: drained to %d: %d misses, want %d", i, s.at, got, s.misses)
					}
				case "next":
					p.mu.Lock()
					got, ok := p.nextDeadline()
					p.mu.Unlock()
					if !ok {
						got = 0
					}
					if got != s.next {
						t.Fatalf("step %d: next deadline %d, want %d", i, got, s.next)
					}
				case "remove":
					p.Remove(tg.addr)
				}
			}
			p.flush()
			var got []string
			for len(p.signals) > 0 {
				for _, s := range <-p.signals {
					got = append(got, fmt.Sprintf("%s %s %d @%d", names[s.Target], s.Kind, s.ConsecutiveMisses, s.Stamp))
				}
			}
			if !slices.Equal(got, tt.signals) {
				t.Errorf("signals %q, want %q", got, tt.signals)
			}
			if tt.rtt != 0 {
				if st := tgs["a"].snapshot(); uint64(st.LastRTT) != tt.rtt {
					t.Errorf("last RTT %d, want %d", st.LastRTT, tt.rtt)
				}
			}
		})
	}
}

// TestSettleWait: the send loop wakes just after the earliest deadline of
// a probe not answered yet, but never sooner than a tick after its last
// drain, whatever the tick (10 ms, or a small prober's 40 ms grid).
func TestSettleWait(t *testing.T) {
	ms := uint64(time.Millisecond)
	for _, tt := range []struct {
		name                    string
		deadline, polledAt, now uint64
		tick, want              time.Duration
	}{
		{"deadline ahead, last drain long ago", 1000 * ms, 500 * ms, 900 * ms, sendTick, 100*time.Millisecond + 1},
		{"deadline passed, last drain long ago", 800 * ms, 500 * ms, 900 * ms, sendTick, 0},
		{"deadline passed, drained just now: a tick after it", 899 * ms, 900 * ms, 900 * ms, sendTick, sendTick},
		{"deadline soon after a drain: a tick after the drain", 902 * ms, 900 * ms, 901 * ms, sendTick, sendTick - time.Millisecond},
		{"deadline past the tick: the deadline", 950 * ms, 900 * ms, 901 * ms, sendTick, 49*time.Millisecond + 1},
		{"grid tick: a tick after the drain", 902 * ms, 900 * ms, 901 * ms, 40 * time.Millisecond, 39 * time.Millisecond},
		{"grid tick, deadline past it: the deadline", 950 * ms, 900 * ms, 901 * ms, 40 * time.Millisecond, 49*time.Millisecond + 1},
	} {
		if got := settleWait(tt.deadline, tt.polledAt, tt.now, tt.tick); got != tt.want {
			t.Errorf("%s: settleWait(%d, %d, %d, %v) = %v, want %v", tt.name, tt.deadline, tt.polledAt, tt.now, tt.tick, got, tt.want)
		}
	}
}
