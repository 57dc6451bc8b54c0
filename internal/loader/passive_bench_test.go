package loader

import (
	"context"
	"errors"
	"io"
	"math"
	"net"
	"net/netip"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/lvsprobe/lvsprobe/internal/testenv"
	"github.com/lvsprobe/lvsprobe/internal/testnet"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// benchRealServers returns n real servers in 198.18.0.0/15, rs4 first.
func benchRealServers(n int) []netip.AddrPort {
	out := []netip.AddrPort{rs4}
	for i := 1; len(out) < n; i++ {
		out = append(out, netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18 + byte(i>>16&1), byte(i >> 8), byte(i)}), 80))
	}
	return out
}

// emptyTC is a TC program that only returns TC_ACT_OK: the cost of a
// BPF_PROG_TEST_RUN itself, subtracted from the others.
func emptyTC(b *testing.B) *ebpf.Program {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.SchedCLS,
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
		License:      "GPL",
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { prog.Close() })
	return prog
}

// BenchmarkPassivePacket measures what the TC programs add per packet,
// with 10,000 real servers in the map. Each op runs a program once with
// BPF_PROG_TEST_RUN on a forwarded packet; the kernel's run-time
// statistics (BPF_ENABLE_STATS) time the program alone, so ns/pkt leaves
// out the system call; added-ns/pkt subtracts an empty program's time
// (the statistics' own clock reads). Kinds:
//
//	data          a data segment: most of the traffic; parsed, nothing looked up
//	syn           a client SYN of a new 4-tuple (65,536 distinct: a
//	              handshake slot not in the cache)
//	synack        the SYN-ACK answering it (the handshake timed)
//	syn-retrans   the same SYN again (an unanswered handshake)
//	rst           a RST from the real server
//	unknown       a SYN to an endpoint that is no real server
//	syn-ipv6      as syn, over IPv6
func BenchmarkPassivePacket(b *testing.B) {
	p := mustLoadPassive(b, PassiveOptions{NoTracepoints: true})
	egress, ingress := p.Programs()
	empty := emptyTC(b)
	if err := p.SetRealServers(append(benchRealServers(10000), rs6)); err != nil {
		b.Fatal(err)
	}
	const tuples = 65536
	synOf := func(client, rs netip.AddrPort, i int) []byte {
		c := netip.AddrPortFrom(client.Addr(), uint16(i))
		if i >= 1<<16 {
			panic("port")
		}
		return pkt{src: c, dst: rs, flags: fSYN}.build()
	}
	frames := func(f func(i int) []byte) [][]byte {
		out := make([][]byte, tuples)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	syns := frames(func(i int) []byte { return synOf(client4, rs4, i) })
	synacks := frames(func(i int) []byte {
		return pkt{src: rs4, dst: netip.AddrPortFrom(client4.Addr(), uint16(i)), flags: fSYNACK}.build()
	})
	one := func(f []byte) [][]byte { return [][]byte{f} }
	kinds := []struct {
		name   string
		prog   *ebpf.Program
		frames [][]byte
		before func(i int) // runs unmeasured before op i (on the other program)
	}{
		{"data", egress, one(pkt{src: client4, dst: rs4, flags: fACK, payload: 1400}.build()), nil},
		{"syn", egress, syns, nil},
		{"synack", ingress, synacks, func(i int) { runFwd(b, egress, syns[i%tuples]) }},
		{"syn-retrans", egress, one(synOf(client4, rs4, 1)), nil},
		{"rst", ingress, one(pkt{src: rs4, dst: client4, flags: fRST}.build()), nil},
		{"unknown", egress, one(pkt{src: client4, dst: netip.MustParseAddrPort("198.19.254.254:81"), flags: fSYN}.build()), nil},
		{"syn-ipv6", egress, frames(func(i int) []byte { return synOf(client6, rs6, i) }), nil},
	}
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Fatalf("enable stats: %v", err)
	}
	defer stats.Close()
	for _, k := range kinds {
		b.Run(k.name, func(b *testing.B) {
			var ns, base time.Duration
			var runs uint64
			for i := range b.N {
				if k.before != nil {
					k.before(i)
				}
				f := k.frames[i%len(k.frames)]
				d, n := timedRun(b, k.prog, f)
				e, _ := timedRun(b, empty, f)
				ns, base, runs = ns+d, base+e, runs+n
			}
			b.ReportMetric(float64(ns)/float64(runs), "ns/pkt")
			b.ReportMetric(float64(ns-base)/float64(runs), "added-ns/pkt")
		})
	}
}

// BenchmarkPassivePacketHot is BenchmarkPassivePacket with warm caches:
// each op runs the program 1000 times on the same packet within one
// BPF_PROG_TEST_RUN, as a busy link runs it back to back. A repeated SYN
// is a retransmission after the first, a repeated SYN-ACK or RST one of
// no tracked handshake (the real server and the director's own address
// looked up). added-ns/pkt is the mean over every op, least-added-ns/pkt
// that of the op least disturbed by the rest of the machine.
func BenchmarkPassivePacketHot(b *testing.B) {
	p := mustLoadPassive(b, PassiveOptions{NoTracepoints: true})
	egress, ingress := p.Programs()
	empty := emptyTC(b)
	if err := p.SetRealServers(append(benchRealServers(10000), rs6)); err != nil {
		b.Fatal(err)
	}
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Fatalf("enable stats: %v", err)
	}
	defer stats.Close()
	for _, k := range []struct {
		name  string
		prog  *ebpf.Program
		frame []byte
	}{
		{"data", egress, pkt{src: client4, dst: rs4, flags: fACK, payload: 1400}.build()},
		{"syn-retrans", egress, pkt{src: client4, dst: rs4, flags: fSYN}.build()},
		{"synack", ingress, pkt{src: rs4, dst: client4, flags: fSYNACK}.build()},
		{"rst", ingress, pkt{src: rs4, dst: client4, flags: fRST}.build()},
		{"unknown", egress, pkt{src: client4, dst: netip.MustParseAddrPort("198.19.254.254:81"), flags: fSYN}.build()},
	} {
		b.Run(k.name, func(b *testing.B) {
			opts := &ebpf.RunOptions{Data: k.frame, Context: forwarded, Repeat: 1000}
			// per returns the mean ns per run and the least mean of
			// one op (1000 runs): on a loaded machine the least is the
			// program's cost with the fewest interrupts and evictions.
			per := func(prog *ebpf.Program) (mean, least float64) {
				least = math.Inf(1)
				var ns, runs uint64
				for range b.N {
					s0, err := prog.Stats()
					if err != nil {
						b.Fatal(err)
					}
					if _, err := prog.Run(opts); err != nil {
						b.Fatal(err)
					}
					s1, err := prog.Stats()
					if err != nil {
						b.Fatal(err)
					}
					d, n := uint64(s1.Runtime-s0.Runtime), s1.RunCount-s0.RunCount
					ns, runs = ns+d, runs+n
					least = min(least, float64(d)/float64(n))
				}
				return float64(ns) / float64(runs), least
			}
			ns, least := per(k.prog)
			base, baseLeast := per(empty)
			b.ReportMetric(ns, "ns/pkt")
			b.ReportMetric(ns-base, "added-ns/pkt")
			b.ReportMetric(least-baseLeast, "least-added-ns/pkt")
		})
	}
}

// runFwd runs prog once on f as a forwarded packet.
func runFwd(b *testing.B, prog *ebpf.Program, f []byte) {
	if _, err := prog.Run(&ebpf.RunOptions{Data: f, Context: forwarded}); err != nil {
		b.Fatal(err)
	}
}

// timedRun runs prog once on f and returns the run time the kernel's
// statistics added, and the runs they counted.
func timedRun(b *testing.B, prog *ebpf.Program, f []byte) (time.Duration, uint64) {
	s0, err := prog.Stats()
	if err != nil {
		b.Fatal(err)
	}
	runFwd(b, prog, f)
	s1, err := prog.Stats()
	if err != nil {
		b.Fatal(err)
	}
	return s1.Runtime - s0.Runtime, s1.RunCount - s0.RunCount
}

// benchTopology builds client -> director -> real server and a sink
// server on the real server, and returns the client, the sink's address
// and the director's link to the real server.
func benchTopology(b *testing.B) (client *testnet.RealServer, sink netip.AddrPort, link netlink.Link) {
	n := testnet.New(b, testnet.Options{RealServers: 2})
	n.Route(b)
	client, rs := n.RealServers[0], n.RealServers[1]
	sink = netip.AddrPortFrom(rs.Addr, 5001)
	l := rs.Listen(b, "tcp", sink.String())
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	link, err := netlink.LinkByName(rs.Link)
	if err != nil {
		b.Fatal(err)
	}
	return client, sink, link
}

// BenchmarkPassiveForwarding measures forwarding through the director
// namespace with and without the TC programs on the real server's link,
// under three loads that each give one hook one kind of packet:
//
//	bulk     one TCP stream, 64 KiB writes (MB/s): data segments out, ACKs back
//	connect  a new connection per op, closed with a RST by the client:
//	         egress SYN, ACK, RST; ingress the SYN-ACK, timed
//	refused  a connect to a closed port per op: egress the SYN (a new
//	         4-tuple), ingress the refusing RST
//
// Modes: off (nothing attached), empty (a program that only returns, on
// both hooks: what the kernel's run-time statistics cost by themselves on
// this traffic) and on. The statistics (BPF_ENABLE_STATS) give each hook's
// ns per packet (egress-ns/pkt, ingress-ns/pkt; the programs' cost added
// to the forwarding path is on minus empty) and packets per op. CPU time
// of the whole process (user+system, getrusage) per op is cpu-ns/op: on 2
// shared cores wall time is noisy.
func BenchmarkPassiveForwarding(b *testing.B) {
	testenv.RequireRoot(b)
	for _, load := range []string{"bulk", "connect", "refused"} {
		for _, mode := range []string{"off", "empty", "on"} {
			b.Run(load+"/"+mode, func(b *testing.B) {
				client, sink, link := benchTopology(b)
				closed := netip.AddrPortFrom(sink.Addr(), 5002)
				var p *Passive
				var eg, in *ebpf.Program
				switch mode {
				case "on":
					p = mustLoadPassive(b, PassiveOptions{NoTracepoints: true})
					if err := p.SetRealServers(append(benchRealServers(10000), sink, closed)); err != nil {
						b.Fatal(err)
					}
					if _, err := p.Attach(link.Attrs().Index); err != nil {
						b.Fatal(err)
					}
					eg, in = p.Programs()
				case "empty":
					eg, in = emptyTC(b), emptyTC(b)
					a, err := attachPassiveTCX(link.Attrs().Index, in, eg)
					if err != nil {
						b.Fatal(err)
					}
					b.Cleanup(func() { a.detach() })
				}
				if eg != nil {
					stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
					if err != nil {
						b.Fatalf("enable stats: %v", err)
					}
					defer stats.Close()
				}
				eg0, in0 := progStats(b, eg), progStats(b, in)
				cpu0 := cpuTime(b)
				b.ResetTimer()
				switch load {
				case "bulk":
					bulk(b, client, sink)
				case "connect":
					connects(b, client, sink)
				case "refused":
					for range b.N {
						if _, err := dial(client, closed, 5*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
							b.Fatalf("dial = %v, want refused", err)
						}
					}
				}
				b.StopTimer()
				b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
				if eg != nil {
					for _, h := range []struct {
						name   string
						prog   *ebpf.Program
						before ebpf.ProgramStats
					}{{"egress", eg, eg0}, {"ingress", in, in0}} {
						st := progStats(b, h.prog)
						if runs := st.RunCount - h.before.RunCount; runs > 0 {
							b.ReportMetric(float64(st.Runtime-h.before.Runtime)/float64(runs), h.name+"-ns/pkt")
							b.ReportMetric(float64(runs)/float64(b.N), h.name+"-pkts/op")
						}
					}
				}
				if p != nil && load != "bulk" {
					rs := sink
					if load == "refused" {
						rs = closed
					}
					if c := counters(b, p, rs); c.SYNs < uint64(b.N) {
						b.Errorf("counted %d SYNs for %d connects", c.SYNs, b.N)
					}
				}
			})
		}
	}
}

// progStats returns the run-time statistics of prog (zero for nil).
func progStats(b *testing.B, prog *ebpf.Program) ebpf.ProgramStats {
	if prog == nil {
		return ebpf.ProgramStats{}
	}
	st, err := prog.Stats()
	if err != nil {
		b.Fatal(err)
	}
	return *st
}

func bulk(b *testing.B, client *testnet.RealServer, sink netip.AddrPort) {
	c, err := dial(client, sink, 5*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 64<<10)
	b.SetBytes(int64(len(buf)))
	for range b.N {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func connects(b *testing.B, client *testnet.RealServer, sink netip.AddrPort) {
	for range b.N {
		c, err := dial(client, sink, 5*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		c.(*net.TCPConn).SetLinger(0) // no TIME_WAIT pile-up on the client
		c.Close()
	}
}

// BenchmarkPassiveFirstReset measures the time from a RST crossing the
// director's link (the kernel's timestamp in the event) to Go receiving
// the event from [Passive.Events]: each op is a connect to a closed port
// of the real server, refused with a RST. Reported: p50, p99 and max in
// µs (target: max <= 10 ms).
func BenchmarkPassiveFirstReset(b *testing.B) {
	client, sink, link := benchTopology(b)
	closed := netip.AddrPortFrom(sink.Addr(), 5002)
	p := mustLoadPassive(b, PassiveOptions{NoTracepoints: true, EventGap: time.Nanosecond})
	if err := p.SetRealServers([]netip.AddrPort{closed}); err != nil {
		b.Fatal(err)
	}
	if _, err := p.Attach(link.Attrs().Index); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		if _, err := dial(client, closed, 5*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
			b.Fatalf("dial = %v, want refused", err)
		}
		select {
		case e := <-p.Events():
			lat = append(lat, time.Duration(Ktime()-e.KtimeNs))
		case <-time.After(5 * time.Second):
			b.Fatal("no reset event")
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
	b.ReportMetric(float64(lat[len(lat)-1].Nanoseconds())/1e3, "max-µs")
}
