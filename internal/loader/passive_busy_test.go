package loader

import (
	"encoding/binary"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/lvsprobe/lvsprobe/internal/testenv"
	"github.com/lvsprobe/lvsprobe/internal/testnet"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// A busy director: what the TC programs add per packet when packets come
// back to back, measured as forwarding cost rather than by the programs'
// own statistics (which add two clock reads per run, stats off here).
//
// A client namespace floods pre-built frames through the director to a
// real server (or the real server toward the client) from an AF_PACKET
// socket with sendmmsg. Each frame is forwarded within the sending
// system call (veth hands it to the director's backlog, which the
// sender's CPU drains when it re-enables bottom halves), so the sending
// thread's CPU time (getrusage RUSAGE_THREAD: with tick accounting and no
// IRQ time accounting it includes the softirq work done in its context)
// is the whole forwarding path's cost: client xmit, director IP forward,
// the TC hook, veth, the receiver's input and drop. The receiver drops
// everything (nftables, testnet's BlackHole), so no answer comes back.

// busyLoads are the floods: each gives one hook one kind of packet, of
// many flows.
var busyLoads = []struct {
	name    string
	ingress bool // sent by the real server toward the client
	flags   byte
	payload int
	newFlow bool // a new 4-tuple for every packet (SYNs: the cold handshake path)
	refused bool // to a closed port of a real server that answers: its kernel refuses each SYN with a RST
	listen  bool // to a listening port of a real server that answers: its kernel sends a SYN-ACK
}{
	{"data", false, fACK, 64, false, false, false},     // client data segments, 4,096 flows: egress
	{"syn", false, fSYN, 0, true, false, false},        // client SYNs, each a new 4-tuple: egress
	{"ack", true, fACK, 0, false, false, false},        // the real server's ACKs, 4,096 flows: ingress
	{"rst", true, fRST | fACK, 0, false, false, false}, // the real server's RSTs of connections (sequence not 0): ingress
	{"refused", false, fSYN, 0, true, true, false},     // client SYNs, new 4-tuples, each refused: egress SYN, ingress RST (tracked)
	{"synack", false, fSYN, 0, true, false, true},      // client SYNs, new 4-tuples, each answered: egress SYN, ingress SYN-ACK (timed)
}

// busyFlows is how many 4-tuples the data, ack and rst loads cycle over.
const busyFlows = 4096

// busyMode is one way the director's link is equipped during a round:
// nothing (off), or an ingress and an egress program.
type busyMode struct {
	name   string
	in, eg *ebpf.Program
}

// attach puts the mode's programs on the link (TCX) and returns what
// takes them off.
func (m busyMode) attach(b *testing.B, ifindex int) (detach func()) {
	if m.in == nil {
		return func() {}
	}
	a, err := attachPassiveTCX(ifindex, m.in, m.eg)
	if err != nil {
		b.Fatal(err)
	}
	return func() {
		if err := a.detach(); err != nil {
			b.Fatal(err)
		}
	}
}

// busyModes returns off, empty, on and, from LVSPROBE_BENCH_PASSIVE_OBJS
// (name=path.o,...: objects built from variants of bpf/passive.c, for
// ablations), one mode per extra object, and from LVSPROBE_BENCH_HS_SAMPLE
// one per handshake sample rate, each loaded as the observer is
// with opts and given rs as its real servers; on is the embedded object,
// the returned observer.
func busyModes(b *testing.B, opts PassiveOptions, rs []netip.AddrPort) (*Passive, []busyMode) {
	load := func() *Passive {
		p := mustLoadPassive(b, opts)
		if err := p.SetRealServers(rs); err != nil {
			b.Fatal(err)
		}
		return p
	}
	p := load()
	eg, in := p.Programs()
	modes := []busyMode{
		{name: "off"},
		{"empty", emptyTC(b), emptyTC(b)},
		{"on", in, eg},
	}
	for _, spec := range strings.Split(os.Getenv("LVSPROBE_BENCH_PASSIVE_OBJS"), ",") {
		name, path, ok := strings.Cut(spec, "=")
		if !ok {
			continue
		}
		passiveSpec = func() (*ebpf.CollectionSpec, error) {
			spec, err := ebpf.LoadCollectionSpec(path)
			if err != nil {
				return nil, err
			}
			// An older object lacks maps the loader now fills: give it
			// the embedded object's (its programs do not use them).
			cur, err := loadPassive()
			if err != nil {
				return nil, err
			}
			for name, m := range cur.Maps {
				if _, ok := spec.Maps[name]; !ok {
					spec.Maps[name] = m
				}
			}
			return spec, nil
		}
		v := load()
		passiveSpec = loadPassive
		eg, in := v.Programs()
		fillDenseKeys(b, v)
		modes = append(modes, busyMode{name, in, eg})
	}
	// LVSPROBE_BENCH_HS_SAMPLE=N,...: the embedded object once more per
	// N, timing 1 handshake in N (mode sampleN; on has the default).
	for _, v := range strings.Split(os.Getenv("LVSPROBE_BENCH_HS_SAMPLE"), ",") {
		var n int
		if _, err := fmt.Sscan(v, &n); err != nil {
			continue
		}
		o := opts
		o.HandshakeSample = n
		v := mustLoadPassive(b, o)
		if err := v.SetRealServers(rs); err != nil {
			b.Fatal(err)
		}
		eg, in := v.Programs()
		modes = append(modes, busyMode{fmt.Sprintf("sample%d", n), in, eg})
	}
	return p, modes
}

// floodFrames builds n frames of a load: Ethernet from src to dst MAC,
// IPv4 with a valid header checksum, TCP with the load's flags.
func floodFrames(n int, srcMAC, dstMAC net.HardwareAddr, from []netip.Addr, to netip.AddrPort, flags byte, payload int, first int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		k := first + i
		src := netip.AddrPortFrom(from[k/64000%len(from)], uint16(1024+k%64000))
		f := make([]byte, 14+20+20+payload)
		copy(f[0:], dstMAC)
		copy(f[6:], srcMAC)
		binary.BigEndian.PutUint16(f[12:], 0x0800)
		ip := f[14:34]
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(40+payload))
		ip[8] = 64
		ip[9] = 6
		s, d := src.Addr().As4(), to.Addr().As4()
		copy(ip[12:], s[:])
		copy(ip[16:], d[:])
		binary.BigEndian.PutUint16(ip[10:], ipChecksum(ip))
		tcp := f[34:54]
		binary.BigEndian.PutUint16(tcp[0:], src.Port())
		binary.BigEndian.PutUint16(tcp[2:], to.Port())
		binary.BigEndian.PutUint32(tcp[4:], uint32(k))
		tcp[12] = 5 << 4
		tcp[13] = flags
		binary.BigEndian.PutUint16(tcp[14:], 65535)
		out[i] = f
		setTCPChecksum(f)
	}
	return out
}

// reversed swaps each frame's addresses and ports: the real server's
// packets toward the client, same flows.
func reversed(frames [][]byte, srcMAC, dstMAC net.HardwareAddr) {
	for _, f := range frames {
		copy(f[0:], dstMAC)
		copy(f[6:], srcMAC)
		var a [4]byte
		copy(a[:], f[26:30])
		copy(f[26:30], f[30:34])
		copy(f[30:34], a[:])
		var p [2]byte
		copy(p[:], f[34:36])
		copy(f[34:36], f[36:38])
		copy(f[36:38], p[:])
	}
}

// setTCPChecksum fills the TCP checksum of an IPv4 frame built by
// floodFrames (after reversed, if at all: the sum does not depend on the
// order of the addresses or ports).
func setTCPChecksum(f []byte) {
	seg := f[34:]
	seg[16], seg[17] = 0, 0
	pseudo := make([]byte, 12, 12+len(seg)+1)
	copy(pseudo[0:8], f[26:34])
	pseudo[9] = 6
	binary.BigEndian.PutUint16(pseudo[10:], uint16(len(seg)))
	sum := ^ipChecksum(append(append(pseudo, seg...), make([]byte, len(seg)%2)...))
	binary.BigEndian.PutUint16(seg[16:], ^sum)
}

func ipChecksum(h []byte) uint16 {
	var s uint32
	for i := 0; i < len(h); i += 2 {
		s += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

// packetSender sends frames out of one link of a namespace with sendmmsg.
type packetSender struct {
	fd int
}

func newPacketSender(b *testing.B, rs *testnet.RealServer, link string) *packetSender {
	var fd int
	err := rs.Do(func() error {
		l, err := net.InterfaceByName(link)
		if err != nil {
			return err
		}
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
			return fmt.Errorf("qdisc bypass: %w", err)
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: l.Index})
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { unix.Close(fd) })
	return &packetSender{fd: fd}
}

// mmsghdr is struct mmsghdr.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

// send sends every frame, batch at a time; it returns how many the kernel
// took.
func (s *packetSender) send(frames [][]byte) (int, error) {
	const batch = 64
	iov := make([]unix.Iovec, batch)
	msgs := make([]mmsghdr, batch)
	sent := 0
	for len(frames) > 0 {
		n := min(batch, len(frames))
		for i := range n {
			iov[i].Base = &frames[i][0]
			iov[i].SetLen(len(frames[i]))
			msgs[i] = mmsghdr{}
			msgs[i].hdr.Iov = &iov[i]
			msgs[i].hdr.SetIovlen(1)
		}
		r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&msgs[0])), uintptr(n), 0, 0, 0)
		if errno != 0 {
			if errno == unix.ENOBUFS || errno == unix.EAGAIN {
				continue
			}
			return sent, fmt.Errorf("sendmmsg: %w", errno)
		}
		sent += int(r)
		frames = frames[r:]
	}
	return sent, nil
}

// threadCPU is the calling OS thread's CPU time (user + system).
func threadCPU(b *testing.B) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// linkTx returns the packets the director's link has sent (toward the
// real server) and received (from it).
func linkTx(b *testing.B, name string) (tx, rx uint64) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		b.Fatal(err)
	}
	st := l.Attrs().Statistics
	return st.TxPackets, st.RxPackets
}

// BenchmarkPassiveBusy measures what the TC programs add per packet on a
// busy forwarding path: each op is one round that floods
// LVSPROBE_BENCH_BUSY_PACKETS (default 20,000) small packets of one load
// through the director in every mode (off, empty, on; the order rotates
// every round), with 10,000 real servers configured. Per mode it reports
// the median over rounds of the forwarding cost, CPU ns per packet of the
// sending thread (all of the path runs there), and of 1/pps of wall time
// (noisier); added-ns/pkt is on minus empty and on minus off by the
// median CPU; each mode's least and greatest round give the spread. Use
// -benchtime Nx for N rounds (alternating repetitions).
func BenchmarkPassiveBusy(b *testing.B) {
	testenv.RequireRoot(b)
	testenv.RequireProgram(b, "nft")
	per := 20000
	if v := os.Getenv("LVSPROBE_BENCH_BUSY_PACKETS"); v != "" {
		if _, err := fmt.Sscan(v, &per); err != nil || per <= 0 || per > 1000000 {
			b.Fatalf("LVSPROBE_BENCH_BUSY_PACKETS=%q: want 1..1000000", v)
		}
	}
	for _, load := range busyLoads {
		b.Run(load.name, func(b *testing.B) {
			n := testnet.New(b, testnet.Options{RealServers: 2, ExtraAddrs: 63})
			n.Route(b)
			client, rs := n.RealServers[0], n.RealServers[1]
			server := netip.AddrPortFrom(rs.Addr, 5001) // nothing listens: the refused load's closed port
			opts := PassiveOptions{NoTracepoints: true}
			if v := os.Getenv("LVSPROBE_BENCH_HS_CAPACITY"); v != "" { // ablation
				if _, err := fmt.Sscan(v, &opts.HandshakeCapacity); err != nil {
					b.Fatalf("LVSPROBE_BENCH_HS_CAPACITY=%q: %v", v, err)
				}
			}
			// LVSPROBE_BENCH_BUSY_SPREAD=N: the new-flow loads go to N
			// real servers (ports of the same address, all configured)
			// instead of one, so each SYN finds its real server's
			// endpoint bucket and counters cold, as on a director with
			// many real servers. Not with the listen load (one listener).
			spread := 0
			if v := os.Getenv("LVSPROBE_BENCH_BUSY_SPREAD"); v != "" && load.newFlow && !load.listen {
				if _, err := fmt.Sscan(v, &spread); err != nil || spread < 1 || spread > 60000 {
					b.Fatalf("LVSPROBE_BENCH_BUSY_SPREAD=%q: want 1..60000", v)
				}
			}
			targets := []netip.AddrPort{server}
			for i := 1; i < spread; i++ {
				targets = append(targets, netip.AddrPortFrom(rs.Addr, server.Port()+uint16(i)))
			}
			p, modes := busyModes(b, opts, append(benchRealServers(max(1, 10000-len(targets))), targets...))
			from, sendVia, dirLink := client, client, client.Link
			sink := rs
			if load.ingress {
				sendVia, dirLink, sink = rs, rs.Link, client
			}
			if load.listen {
				// A listener that never accepts: its kernel answers
				// every SYN with a SYN-ACK (a SYN cookie once the
				// queue is full).
				rs.Listen(b, "tcp", server.String())
			}
			if load.refused || load.listen {
				// The real server answers; the client drops the
				// answers.
				client.BlackHole(b)
			} else {
				sink.BlackHole(b)
			}
			outLink := rs.Link // the director's link the packets leave by
			if load.ingress {
				outLink = client.Link
			}
			peerMAC := func(r *testnet.RealServer) net.HardwareAddr {
				var mac net.HardwareAddr
				if err := r.Do(func() error {
					l, err := net.InterfaceByName("eth0")
					if err == nil {
						mac = l.HardwareAddr
					}
					return err
				}); err != nil {
					b.Fatal(err)
				}
				return mac
			}
			dl, err := netlink.LinkByName(dirLink)
			if err != nil {
				b.Fatal(err)
			}
			srcMAC, dstMAC := peerMAC(sendVia), dl.Attrs().HardwareAddr
			// The programs go on the real server's link, as on a
			// director: egress loads leave by it, ingress loads come in.
			rsl, err := netlink.LinkByName(rs.Link)
			if err != nil {
				b.Fatal(err)
			}
			sender := newPacketSender(b, sendVia, "eth0")
			// Static neighbour entries: no packet waits for ARP.
			ol, err := netlink.LinkByName(outLink)
			if err != nil {
				b.Fatal(err)
			}
			for _, a := range sink.Addrs {
				if err := netlink.NeighSet(&netlink.Neigh{LinkIndex: ol.Attrs().Index, Family: netlink.FAMILY_V4,
					IP: net.IP(a.AsSlice()), HardwareAddr: peerMAC(sink), State: netlink.NUD_PERMANENT}); err != nil {
					b.Fatal(err)
				}
			}
			// The data, ack and rst loads cycle over busyFlows flows;
			// the syn load takes a new 4-tuple for every packet (64
			// addresses x 64,000 ports, at most 4,096,000 in a run).
			flows := busyFlows
			if load.newFlow {
				flows = per
			}
			next := 0
			frames := func() [][]byte {
				f := floodFrames(min(flows, per), srcMAC, dstMAC, from.Addrs, server, load.flags, load.payload, next)
				if len(targets) > 1 {
					for i, fr := range f {
						binary.BigEndian.PutUint16(fr[36:], targets[(next+i)%len(targets)].Port())
						setTCPChecksum(fr)
					}
				}
				if load.ingress {
					reversed(f, srcMAC, dstMAC)
				}
				out := make([][]byte, 0, per)
				for len(out) < per {
					out = append(out, f[:min(len(f), per-len(out))]...)
				}
				if load.newFlow {
					next += per
				}
				return out
			}
			// The packets the director forwarded.
			counted := func() uint64 {
				tx, _ := linkTx(b, outLink)
				return tx
			}
			cpu := make(map[string][]float64)
			wall := make(map[string][]float64)
			run := make(map[string][]float64) // the hook's run time by the kernel's statistics
			var synsOn uint64
			// flood sends one round's packets through the director with
			// m attached and returns the sending thread's CPU time, the
			// wall time and how many were sent.
			flood := func(m busyMode) (cpu, wall time.Duration, sent int) {
				if load.newFlow && next+per+256 > 64*64000 {
					b.Fatalf("out of new 4-tuples: fewer rounds or packets")
				}
				f := frames()
				detach := m.attach(b, rsl.Attrs().Index)
				defer detach()
				// A short warm-up, unmeasured: the first packets of a
				// freshly attached program.
				if _, err := sender.send(f[:min(256, len(f))]); err != nil {
					b.Fatal(err)
				}
				if m.name == "on" && load.newFlow {
					synsOn += uint64(min(256, len(f)))
				}
				c0 := counted()
				t0, w0 := threadCPU(b), time.Now()
				sent, err := sender.send(f)
				wall, cpu = time.Since(w0), threadCPU(b)-t0
				if err != nil {
					b.Fatal(err)
				}
				if c := counted() - c0; c < uint64(sent)*99/100 {
					b.Fatalf("%s: %d of %d packets forwarded", m.name, c, sent)
				}
				if m.name == "on" && load.newFlow {
					synsOn += uint64(sent)
				}
				return cpu, wall, sent
			}
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			split := os.Getenv("LVSPROBE_BENCH_BUSY_SPLIT") != ""
			if split {
				busySplit(b, rs.Link)
			}
			tcp0 := perCPUTCP(b, p)
			b.ResetTimer()
			for round := range b.N {
				// Forwarding cost, statistics off.
				for j := range modes {
					m := modes[(j+round)%len(modes)]
					t, w, sent := flood(m)
					cpu[m.name] = append(cpu[m.name], float64(t.Nanoseconds())/float64(sent))
					wall[m.name] = append(wall[m.name], float64(w.Nanoseconds())/float64(sent))
				}
				// The hook's own run time, statistics on.
				stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
				if err != nil {
					b.Fatalf("enable stats: %v", err)
				}
				for j := range modes {
					m := modes[(j+round)%len(modes)]
					if m.in == nil {
						continue
					}
					e0, i0 := progStats(b, m.eg), progStats(b, m.in)
					_, _, sent := flood(m)
					for _, h := range []struct {
						name   string
						before ebpf.ProgramStats
						prog   *ebpf.Program
					}{{"egress", e0, m.eg}, {"ingress", i0, m.in}} {
						// A hook counts when it ran for most packets.
						st := progStats(b, h.prog)
						if n := st.RunCount - h.before.RunCount; n >= uint64(sent)/2 {
							k := m.name + "-" + h.name
							run[k] = append(run[k], float64(st.Runtime-h.before.Runtime)/float64(n))
						}
					}
				}
				stats.Close()
			}
			b.StopTimer()
			// Where the on object ran: its share of TCP packets per CPU
			// (both hooks; with the split, ingress answers run on CPU 1).
			tcp1 := perCPUTCP(b, p)
			var total uint64
			for i := range tcp1 {
				total += tcp1[i] - tcp0[i]
			}
			if total > 0 {
				b.ReportMetric(float64(tcp1[0]-tcp0[0])/float64(total), "on-tcp-cpu0-share")
			}
			if load.newFlow {
				// The answers all arrive; with the split, CPU 1's
				// backlog (netdev_max_backlog) may drop a few when the
				// machine is loaded.
				least := synsOn * 99 / 100
				if split {
					least = synsOn * 9 / 10
				}
				var c ClientCounters
				all, _, err := p.Counters()
				if err != nil {
					b.Fatal(err)
				}
				for _, t := range targets {
					v := all[t]
					c.SYNs += v.SYNs
					c.Refused += v.Refused
					for i := range v.Latency {
						c.Latency[i] += v.Latency[i]
					}
				}
				if c.SYNs != synsOn {
					st, _ := p.Stats()
					b.Errorf("counted %d SYNs, sent %d while on (%+v)", c.SYNs, synsOn, st)
				}
				if load.refused && (c.Refused < least || c.Refused > synsOn) {
					b.Errorf("counted %d refusals of %d SYNs", c.Refused, synsOn)
				}
				// 1 handshake in HandshakeSample is timed: a binomial
				// count, within 5 standard deviations of its mean.
				n := float64(p.opts.HandshakeSample)
				dev := 5 * math.Sqrt(float64(synsOn)/n)
				if lo, hi := float64(least)/n-dev, float64(synsOn)/n+dev; load.listen &&
					(float64(c.Latency.Count()) < lo || float64(c.Latency.Count()) > hi) {
					b.Errorf("timed %d handshakes of %d SYNs, want %.0f to %.0f (1 in %.0f)", c.Latency.Count(), synsOn, lo, hi, n)
				}
			}
			med := func(v []float64) float64 {
				s := slices.Clone(v)
				slices.Sort(s)
				return s[len(s)/2]
			}
			for _, m := range modes {
				b.ReportMetric(med(cpu[m.name]), m.name+"-cpu-ns/pkt")
				b.ReportMetric(slices.Min(cpu[m.name]), m.name+"-min-cpu-ns/pkt")
				b.ReportMetric(slices.Max(cpu[m.name]), m.name+"-max-cpu-ns/pkt")
				b.ReportMetric(med(wall[m.name]), m.name+"-wall-ns/pkt")
				if m.name != "off" && m.name != "empty" {
					b.ReportMetric(med(cpu[m.name])-med(cpu["empty"]), m.name+"-added-vs-empty-ns/pkt")
					b.ReportMetric(med(cpu[m.name])-med(cpu["off"]), m.name+"-added-vs-off-ns/pkt")
					b.ReportMetric(med(wall[m.name])-med(wall["off"]), m.name+"-wall-added-vs-off-ns/pkt")
				}
			}
			for _, m := range modes {
				for _, hook := range []string{"egress", "ingress"} {
					k := m.name + "-" + hook
					if len(run[k]) == 0 {
						continue
					}
					b.ReportMetric(med(run[k]), k+"-run-ns/pkt")
					b.ReportMetric(slices.Min(run[k]), k+"-min-run-ns/pkt")
					if m.name != "empty" {
						b.ReportMetric(med(run[k])-med(run["empty-"+hook]), k+"-run-added-ns/pkt")
					}
				}
			}
			b.Logf("%s: per round CPU ns/pkt %v; run ns/pkt %v", load.name, cpu, run)
		})
	}
}

// BenchmarkPassiveBulkStats is BenchmarkPassiveForwarding's bulk load
// (one TCP stream, 64 KiB writes: data segments out, ACKs back) with the
// modes alternating within one run, each op a round of 200 writes per
// mode, timed by the kernel's run-time statistics (BPF_ENABLE_STATS):
// per mode and hook the median ns per packet over rounds; added is on
// minus empty. Extra modes come from LVSPROBE_BENCH_PASSIVE_OBJS (see
// busyModes).
func BenchmarkPassiveBulkStats(b *testing.B) {
	client, sink, link := benchTopology(b)
	p, modes := busyModes(b, PassiveOptions{NoTracepoints: true}, append(benchRealServers(10000), sink))
	modes = modes[1:] // no "off": nothing to time
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Fatalf("enable stats: %v", err)
	}
	defer stats.Close()
	c, err := dial(client, sink, 5*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 64<<10)
	ns := make(map[string][]float64)
	pkts := make(map[string][]float64)
	ifindex := link.Attrs().Index
	b.ResetTimer()
	for round := range b.N {
		for j := range modes {
			m := modes[(j+round)%len(modes)]
			detach := m.attach(b, ifindex)
			progs := []*ebpf.Program{m.in, m.eg}
			s0 := make([]ebpf.ProgramStats, len(progs))
			for i, pr := range progs {
				s0[i] = progStats(b, pr)
			}
			for range 200 {
				if _, err := c.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
			for i, pr := range progs {
				st := progStats(b, pr)
				if runs := st.RunCount - s0[i].RunCount; runs > 0 {
					name := m.name + "-" + []string{"ingress", "egress"}[i]
					ns[name] = append(ns[name], float64(st.Runtime-s0[i].Runtime)/float64(runs))
					pkts[name] = append(pkts[name], float64(runs)/200)
				}
			}
			detach()
		}
	}
	b.StopTimer()
	// Every segment's headers were in the linear data: none was
	// counted truncated (a GSO super-packet or a paged skb would be).
	// The stream was open before any mode: no handshake packet examined.
	if st, err := p.Stats(); err != nil || st.HandshakePackets != 0 || st.Truncated != 0 {
		b.Errorf("stats %+v, %v: want no handshake packets and none truncated", st, err)
	}
	med := func(v []float64) float64 {
		s := slices.Clone(v)
		slices.Sort(s)
		return s[len(s)/2]
	}
	for name, v := range ns {
		b.ReportMetric(med(v), name+"-ns/pkt")
		b.ReportMetric(slices.Min(v), name+"-min-ns/pkt")
		b.ReportMetric(med(pkts[name]), name+"-pkts/write")
		if hook := name[strings.LastIndex(name, "-")+1:]; !strings.HasPrefix(name, "empty-") {
			b.ReportMetric(med(v)-med(ns["empty-"+hook]), name+"-added-ns/pkt")
		}
	}
}

// perCPUTCP returns the TCP packets the observer's programs parsed, per
// CPU (the per-CPU stats map).
func perCPUTCP(b *testing.B, p *Passive) []uint64 {
	var per []uint64
	if err := p.tc.Stats.Lookup(uint32(0), &per); err != nil {
		b.Fatal(err)
	}
	return per
}

// busySplit (LVSPROBE_BENCH_BUSY_SPLIT) puts the two directions of a
// handshake on different CPUs, as a director's multi-queue NICs do: the
// calling (locked) thread, whose softirq forwards what it sends, on CPU
// 0, and what the director receives on link (the real server's answers)
// steered to CPU 1 by RPS.
func busySplit(b *testing.B, link string) {
	if runtime.NumCPU() < 2 {
		b.Skip("the split needs 2 CPUs")
	}
	var set unix.CPUSet
	set.Set(0)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		b.Fatalf("pin to CPU 0: %v", err)
	}
	b.Cleanup(func() {
		var all unix.CPUSet
		for i := range runtime.NumCPU() {
			all.Set(i)
		}
		_ = unix.SchedSetaffinity(0, &all)
	})
	testenv.RequireProgram(b, "unshare")
	// sysfs shows the links of the namespace that mounted it.
	sh := fmt.Sprintf("mount -t sysfs sysfs /sys && echo 2 > /sys/class/net/%[1]s/queues/rx-0/rps_cpus && cat /sys/class/net/%[1]s/queues/rx-0/rps_cpus", link)
	out, err := exec.Command("unshare", "-m", "sh", "-c", sh).CombinedOutput()
	if err != nil || !strings.HasSuffix(strings.TrimSpace(string(out)), "2") {
		b.Fatalf("RPS on %s: %v: %s", link, err, out)
	}
}

// fillDenseKeys gives an ablation object with an rs_keys map (a dense
// record by slot that starts with the real server's key: a layout
// experiment, docs/benchmarks.md 14.1) the keys of its rs_stats, the
// rest of each record zero.
func fillDenseKeys(b *testing.B, p *Passive) {
	eg, _ := p.Programs()
	info, err := eg.Info()
	if err != nil {
		b.Fatal(err)
	}
	ids, _ := info.MapIDs()
	for _, id := range ids {
		m, err := ebpf.NewMapFromID(id)
		if err != nil {
			b.Fatal(err)
		}
		defer m.Close()
		mi, err := m.Info()
		if err != nil || mi.Name != "rs_keys" {
			continue
		}
		for slot := uint32(0); slot < p.tc.RsStats.MaxEntries(); slot++ {
			var st passivePassiveRsStats
			if err := p.tc.RsStats.Lookup(slot, &st); err != nil {
				b.Fatal(err)
			}
			if st.Key.Family == 0 {
				continue
			}
			v := make([]byte, mi.ValueSize)
			copy(v, st.Key.Addr[:])
			binary.NativeEndian.PutUint16(v[16:], st.Key.Port)
			v[18], v[19] = st.Key.Proto, st.Key.Family
			if err := m.Put(slot, v); err != nil {
				b.Fatal(err)
			}
		}
	}
}
