package synprobe

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/testnet"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/sys/unix"
)

// cpuNs returns the user+system CPU time of the process (who ==
// unix.RUSAGE_SELF) or the calling thread (unix.RUSAGE_THREAD), in ns.
// Softirq work the kernel does on our behalf (the veth hop into the real
// server's namespace and its TCP input) is charged here too: on one
// machine, the real server's kernel is part of the bill.
func cpuNs(tb testing.TB, who int) int64 {
	var ru unix.Rusage
	if err := unix.Getrusage(who, &ru); err != nil {
		tb.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// ingressDrop makes rs drop every IP packet at its link's ingress (an
// nftables netdev hook, before IP input; ARP still answers, so the
// director really transmits), the cheapest black hole behind a veth.
func ingressDrop(tb testing.TB, rs *testnet.RealServer) {
	tb.Helper()
	cmd := rs.Command(context.Background(), "nft", "-f", "-")
	cmd.Stdin = strings.NewReader("table netdev lvsprobe_bench {\n\tchain in {\n\t\ttype filter hook ingress device eth0 priority -500; policy accept;\n\t\tether type { ip, ip6 } drop\n\t}\n}\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("ingress drop in %s: %v: %s", rs.Name, err, out)
	}
}

// BenchmarkSend measures the send path alone on one thread: cookie, SYN
// header with checksum, sendmmsg in batches of 64, to a black-holed real
// server (its link drops everything at ingress). The veth hop runs in our
// thread's softirq and is counted.
func BenchmarkSend(b *testing.B) {
	n := testnet.New(b, testnet.Options{})
	hole := n.RealServers[0]
	ingressDrop(b, hole)
	c, err := newCookies()
	if err != nil {
		b.Fatal(err)
	}
	const batch = 64
	s := newSender(batch)
	if err := s.open(true, false); err != nil {
		b.Fatal(err)
	}
	defer s.close()
	ps := make([]probe, batch)
	for i := range ps {
		ps[i] = probe{local: hole.Director, remote: hole.Addr, rport: uint16(1 + i)}
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu0 := cpuNs(b, unix.RUSAGE_THREAD)
	start := time.Now()
	b.ResetTimer()
	errs := 0
	for sent, gen := 0, uint16(0); sent < b.N; gen++ {
		k := min(batch, b.N-sent)
		for i := range ps[:k] {
			p := &ps[i]
			p.lport = 61000 + (gen+uint16(i))%1000
			p.seq = c.seq(p.local, p.remote, p.lport, p.rport)
		}
		m, err := s.send(ps[:k])
		if err != nil {
			errs++ // ENOBUFS when the neighbour is still resolving
		}
		sent += max(m, 1)
	}
	b.StopTimer()
	wall := time.Since(start)
	b.ReportMetric(float64(b.N)/wall.Seconds(), "probes/s")
	b.ReportMetric(float64(cpuNs(b, unix.RUSAGE_THREAD)-cpu0)/float64(b.N), "cpu-ns/probe")
	if errs > 10 {
		b.Errorf("%d send errors", errs)
	}
}

// BenchmarkProber10k runs the whole prober (eBPF receiver) against 10,000
// targets (20 addresses x 500 ports: 250 listening, 250 closed) at 10
// probes/s each, for 3 s per iteration (use -benchtime=1x), and reports
// the process's CPU in cores. Every probe must be accounted for:
// answered, or still in flight when the run stops.
func BenchmarkProber10k(b *testing.B) {
	n := testnet.New(b, testnet.Options{ExtraAddrs: 19})
	rs := n.RealServers[0]
	const open, closed = 250, 250
	for i := range open {
		rs.Listen(b, "tcp", fmt.Sprintf(":%d", 20000+i))
	}
	p, _ := newTestProber(b, n, Config{Interval: 100 * time.Millisecond, PortLo: 62000, PortHi: 62999, SignalBuffer: 1024})
	for _, a := range rs.Addrs {
		for i := range open + closed {
			if err := p.Add(netip.AddrPortFrom(a, uint16(20000+i)), 0); err != nil {
				b.Fatal(err)
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // the failure detector's stand-in: consume every signal
		for {
			select {
			case <-p.Signals():
			case <-ctx.Done():
				return
			}
		}
	}()
	stop := start(b, p)
	b.ResetTimer()
	var cpu, wall time.Duration
	sent0 := testutil.ToFloat64(p.m.sent)
	for range b.N {
		c0, t0 := cpuNs(b, unix.RUSAGE_SELF), time.Now()
		time.Sleep(3 * time.Second) // the measurement window, not a synchronisation
		cpu += time.Duration(cpuNs(b, unix.RUSAGE_SELF) - c0)
		wall += time.Since(t0)
	}
	b.StopTimer()
	sent := testutil.ToFloat64(p.m.sent) - sent0
	stop()

	var total TargetState
	outstanding := 0
	p.mu.Lock()
	for _, t := range p.targets {
		total.Sent += t.state.Sent
		total.Answered += t.state.Answered
		if t.cur.gen != 0 && !t.cur.answered {
			outstanding++ // the newest probe, in flight when Run stopped
		}
		if t.prev.gen != 0 && !t.prev.answered && t.prev.untilNs != 0 {
			for _, st := range p.unsettled {
				if st.t == t && st.gen == t.prev.gen {
					outstanding++ // its answer could still have been on the way
				}
			}
		}
	}
	p.mu.Unlock()
	misses := testutil.ToFloat64(p.m.misses)
	invalid := 0.0
	for _, r := range []string{"truncated", "malformed", "bad_checksum", "not_answer", "bad_cookie", "duplicate", "late", "unknown_target"} {
		invalid += testutil.ToFloat64(p.m.invalid.WithLabelValues(r))
	}
	b.ReportMetric(cpu.Seconds()/wall.Seconds(), "cpu-cores")
	b.ReportMetric(sent/wall.Seconds(), "probes/s")
	b.ReportMetric(float64(total.Sent-total.Answered), "unanswered")
	b.ReportMetric(misses, "misses")
	if total.Answered+uint64(misses)+uint64(outstanding) != total.Sent || misses != 0 || invalid != 0 {
		b.Errorf("sent %d, answered %d, missed %v, in flight %d, invalid %v, dropped signals %v, kernel lost %v",
			total.Sent, total.Answered, misses, outstanding, invalid,
			testutil.ToFloat64(p.m.dropped), p.kernelLost())
	}
}

// BenchmarkCostPer1000 compares, in one run, the CPU the director spends
// per check of a real nginx: a SYN probe (the whole prober, answered), a
// Go net.Dialer connect+close, and an HTTP GET on a fresh connection.
// cpu-ms/1000 is the process's CPU per 1,000 checks (nginx's own process
// is not counted; the kernel's softirq work on both sides partly is).
func BenchmarkCostPer1000(b *testing.B) {
	n := testnet.New(b, testnet.Options{ExtraAddrs: 9})
	rs := n.RealServers[0]
	// nginx listens on 80..99, so the prober has 200 targets and runs at
	// a steady 20,000 probes/s rather than idling between a few.
	var extra strings.Builder
	for port := 81; port < 100; port++ {
		fmt.Fprintf(&extra, "listen %d; ", port)
	}
	rs.StartNginx(b, testnet.NginxOptions{Files: map[string][]byte{"index.html": []byte("ok\n")}, Extra: extra.String()})
	report := func(b *testing.B, cpu0 int64) {
		b.ReportMetric(float64(cpuNs(b, unix.RUSAGE_SELF)-cpu0)/float64(b.N)/1e3, "cpu-ms/1000")
	}
	b.Run("syn", func(b *testing.B) {
		p, _ := newTestProber(b, n, Config{Interval: 10 * time.Millisecond, PortLo: 62000, PortHi: 62999, SignalBuffer: 1024})
		for _, a := range rs.Addrs {
			for port := uint16(80); port < 100; port++ {
				if err := p.Add(netip.AddrPortFrom(a, port), 0); err != nil {
					b.Fatal(err)
				}
			}
		}
		cpu0 := cpuNs(b, unix.RUSAGE_SELF)
		b.ResetTimer()
		stop := start(b, p)
		timeout := time.After(time.Minute)
		for got := 0; got < b.N; {
			select {
			case batch := <-p.Signals():
				for _, s := range batch {
					if s.Kind == SynAck {
						got++
					}
				}
			case <-timeout:
				b.Fatalf("%d of %d answers", got, b.N)
			}
		}
		stop()
		b.StopTimer()
		report(b, cpu0)
		b.ReportMetric(testutil.ToFloat64(p.m.sent)/float64(b.N), "probes/answer")
	})
	b.Run("connect", func(b *testing.B) {
		var d net.Dialer
		cpu0 := cpuNs(b, unix.RUSAGE_SELF)
		b.ResetTimer()
		for i := range b.N {
			c, err := d.DialContext(context.Background(), "tcp", netip.AddrPortFrom(rs.Addrs[i%len(rs.Addrs)], 80).String())
			if err != nil {
				b.Fatal(err)
			}
			c.Close()
		}
		b.StopTimer()
		report(b, cpu0)
	})
	b.Run("httpget", func(b *testing.B) {
		cl := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		cpu0 := cpuNs(b, unix.RUSAGE_SELF)
		b.ResetTimer()
		for i := range b.N {
			resp, err := cl.Get("http://" + netip.AddrPortFrom(rs.Addrs[i%len(rs.Addrs)], 80).String() + "/")
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
		b.StopTimer()
		report(b, cpu0)
	})
}
