package synprobe

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/loader"
	"github.com/lvsprobe/lvsprobe/internal/testnet"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// waitTimeout bounds every wait for a signal; reaching it fails the test.
const waitTimeout = 20 * time.Second

// want is what a target must show before a wait ends.
type want struct {
	kind      Kind
	minMisses int // for Miss: consecutive misses at least this many
}

// waitSignals reads p's signals until every target in wants has shown its
// wanted signal (the newest signal of each target decides), and fails tb
// after waitTimeout.
func waitSignals(tb testing.TB, p *Prober, wants map[netip.AddrPort]want) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	last := map[netip.AddrPort]Signal{}
	met := func() bool {
		for t, w := range wants {
			s, ok := last[t]
			if !ok || s.Kind != w.kind || s.ConsecutiveMisses < w.minMisses {
				return false
			}
		}
		return true
	}
	for !met() {
		select {
		case batch := <-p.Signals():
			k := loader.Ktime()
			for _, s := range batch {
				// Every signal is dated on the kernel's clock: the
				// detector's per-stage times start from it.
				if s.Stamp == 0 || s.Stamp > k {
					tb.Fatalf("%v: %v signal stamped %d, handed over at %d: want a time on the kernel's clock, not after its hand-over", s.Target, s.Kind, s.Stamp, k)
				}
				last[s.Target] = s
			}
		case <-ctx.Done():
			for t, w := range wants {
				tb.Errorf("%v: want %v (misses >= %d), last signal %+v", t, w.kind, w.minMisses, last[t])
			}
			tb.FailNow()
		}
	}
}

// TestProbeTopology probes open, closed, vanishing and black-holed
// targets over IPv4 and IPv6 with each receiver and each send path: raw
// sockets only, or prebuilt frames where the neighbour is resolved.
func TestProbeTopology(t *testing.T) {
	for _, mode := range []ReceiverMode{ReceiverEBPF, ReceiverPacket} {
		name := map[ReceiverMode]string{ReceiverEBPF: "ebpf", ReceiverPacket: "packet"}[mode]
		for _, raw := range []bool{true, false} {
			path := map[bool]string{true: "raw", false: "frames"}[raw]
			t.Run(name+"/"+path, func(t *testing.T) { testProbeTopology(t, mode, name, raw) })
		}
	}
}

func testProbeTopology(t *testing.T, mode ReceiverMode, name string, raw bool) {
	n := testnet.New(t, testnet.Options{RealServers: 2, ExtraAddrs: 2})
	rs, hole := n.RealServers[0], n.RealServers[1]
	v6 := addIPv6(t, rs)
	// Listening: 8080, 8082, 8083 stay, 8081 goes away mid-test; closed:
	// 9090-9093. On every address, IPv4 and IPv6.
	open := []uint16{8080, 8082, 8083}
	closed := []uint16{9090, 9091, 9092, 9093}
	for _, port := range open {
		rs.Listen(t, "tcp", fmt.Sprintf(":%d", port))
	}
	leaving := rs.Listen(t, "tcp", ":8081")
	hole.BlackHole(t)

	addrs := append(append([]netip.Addr(nil), rs.Addrs...), v6)
	if !raw {
		// A connection to each address resolves its neighbour, so
		// frames are used from the first probe on.
		for _, a := range addrs {
			c, err := net.DialTimeout("tcp", netip.AddrPortFrom(a, open[0]).String(), waitTimeout)
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
		}
	}
	p, reg := newTestProber(t, n, Config{Interval: 20 * time.Millisecond, Receiver: mode, PortLo: 62000, PortHi: 62999, RawSockets: raw})
	if got := p.Receiver(); got != name {
		t.Fatalf("receiver = %s, want %s", got, name)
	}
	reserved, err := os.ReadFile(reservedPortsFile)
	if err != nil || !strings.Contains(string(reserved), "62000-62999") {
		t.Errorf("reserved ports = %q, %v; want 62000-62999 in it", reserved, err)
	}

	wants := map[netip.AddrPort]want{}
	for _, a := range addrs {
		for _, port := range open {
			wants[netip.AddrPortFrom(a, port)] = want{kind: SynAck}
		}
		wants[netip.AddrPortFrom(a, 8081)] = want{kind: SynAck}
		for _, port := range closed {
			wants[netip.AddrPortFrom(a, port)] = want{kind: Reset}
		}
	}
	wants[netip.AddrPortFrom(hole.Addr, 80)] = want{kind: Miss, minMisses: 3}
	for target := range wants {
		if err := p.Add(target, 0); err != nil {
			t.Fatal(err)
		}
	}
	stop := start(t, p)
	waitSignals(t, p, wants)

	// The listener on 8081 goes away: its targets turn to RST.
	leaving.Close()
	after := map[netip.AddrPort]want{}
	for _, a := range addrs {
		after[netip.AddrPortFrom(a, 8081)] = want{kind: Reset}
	}
	waitSignals(t, p, after)
	stop()

	for target, w := range wants {
		st, ok := p.Snapshot(target)
		if !ok {
			t.Fatalf("no snapshot for %v", target)
		}
		switch {
		case w.kind == Miss:
			if st.Answered != 0 || st.ConsecutiveMisses < 3 || st.SynAckSeen || st.RSTSeen {
				t.Errorf("black hole %v: %+v", target, st)
			}
		case w.kind == Reset || target.Port() == 8081:
			if !st.RSTSeen || st.SynAckSeen || st.LastRTT <= 0 || st.LastRTT > time.Second {
				t.Errorf("closed %v: %+v", target, st)
			}
		default:
			if !st.SynAckSeen || st.RSTSeen || st.LastRTT <= 0 || st.LastRTT > time.Second {
				t.Errorf("open %v: %+v", target, st)
			}
		}
	}

	// Prebuilt frames carry the probes where the neighbour is known (all
	// but the black hole's), raw sockets where they are not or are asked for.
	frames, sent := testutil.ToFloat64(p.m.sentFrames), testutil.ToFloat64(p.m.sent)
	if raw && frames != 0 {
		t.Errorf("%v probes sent as frames with RawSockets", frames)
	}
	if !raw && frames < sent/2 {
		t.Errorf("%v of %v probes sent as frames, want most", frames, sent)
	}

	// No half-open state on the real server: every SYN-ACK was reset by
	// the director's kernel (EmbryonicRsts counts resets of SYN_RECV
	// requests), and nothing is left in SYN_RECV.
	synacks := testutil.ToFloat64(p.m.answers.WithLabelValues("synack"))
	if synacks < float64((len(open)+1)*len(addrs)) {
		t.Errorf("synack answers = %v, want >= %d", synacks, (len(open)+1)*len(addrs))
	}
	if rsts := tcpExt(t, rs, "EmbryonicRsts"); float64(rsts) < synacks {
		t.Errorf("real server saw %d resets of SYN_RECV requests, want >= %v (one per SYN-ACK)", rsts, synacks)
	}
	if out := strings.TrimSpace(rs.Run(t, "ss", "-Htn", "state", "syn-recv")); out != "" {
		t.Errorf("half-open connections left on the real server:\n%s", out)
	}
	for _, reason := range []string{"bad_cookie", "bad_checksum", "malformed", "truncated"} {
		if v := testutil.ToFloat64(p.m.invalid.WithLabelValues(reason)); v != 0 {
			t.Errorf("answers_invalid_total{reason=%q} = %v on a clean network", reason, v)
		}
	}
	if v := testutil.ToFloat64(p.m.receiver.WithLabelValues(name)); v != 1 {
		t.Errorf("receiver{kind=%q} = %v", name, v)
	}
	if probs, err := testutil.GatherAndLint(reg); err != nil || len(probs) != 0 {
		t.Errorf("metric lint: %v %v", probs, err)
	}
}

// TestFallbackWarns: where the eBPF receiver cannot attach, the prober
// falls back to the packet socket, says so once, and shows it in a metric.
func TestFallbackWarns(t *testing.T) {
	n := testnet.New(t, testnet.Options{})
	var logs bytes.Buffer
	cfg := Config{Logger: slog.New(slog.NewTextHandler(&logs, nil)), PortLo: 63000, PortHi: 63099}
	cfg.Interfaces = []string{"no-such-link"}
	n.RealServers = nil // attach only to the missing link
	p, _ := newTestProber(t, n, cfg)
	if p.Receiver() != "packet" {
		t.Fatalf("receiver = %s, want packet", p.Receiver())
	}
	if c := strings.Count(logs.String(), "level=WARN"); c != 1 {
		t.Errorf("%d warnings, want 1:\n%s", c, logs.String())
	}
	if v := testutil.ToFloat64(p.m.receiver.WithLabelValues("packet")); v != 1 {
		t.Errorf("receiver{kind=packet} = %v", v)
	}
}

// TestReservedPortsRestored: Close gives the reserved source ports back.
func TestReservedPortsRestored(t *testing.T) {
	n := testnet.New(t, testnet.Options{})
	before, err := os.ReadFile(reservedPortsFile)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := newTestProber(t, n, Config{PortLo: 63100, PortHi: 63199})
	during, _ := os.ReadFile(reservedPortsFile)
	if !strings.Contains(string(during), "63100-63199") {
		t.Errorf("during: %q", during)
	}
	// A second prober cannot take overlapping ports.
	if _, err := New(Config{PortLo: 63150, PortHi: 63250, Receiver: ReceiverPacket}); err == nil {
		t.Error("second prober on overlapping ports: no error")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(reservedPortsFile)
	if string(after) != string(before) {
		t.Errorf("after Close: %q, want %q", after, before)
	}
}
