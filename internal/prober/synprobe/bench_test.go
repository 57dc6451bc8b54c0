package synprobe

import (
	"context"
	"fmt"
	"github.com/cilium/ebpf"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"github.com/lvsprobe/lvsprobe/internal/prober"
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

// BenchmarkSend measures the send path alone on one thread: cookie,
// headers with checksums, sendmmsg in batches of 64, to a black hole: an
// address in the real server's subnet whose neighbour entry points at a
// MAC address nobody has, so every probe crosses the veth and the real
// server's side drops it as not addressed to it (the cheapest receive a
// veth allows; it runs in our thread and is counted).
//
//	raw:    raw IP sockets, the kernel builds the IP header, routes and
//	        resolves the neighbour per packet.
//	packet: prebuilt Ethernet frames on a packet socket that bypasses the
//	        qdisc, with sendmmsg.
//	ring:   the same frames through a PACKET_TX_RING, one send() per
//	        batch (what the prober uses for a target whose neighbour is
//	        resolved).
//
// On a plain veth the black hole's drop runs in the sender's thread and
// is in the figure; under napi/ the veth runs threaded NAPI, the drop
// runs in the real server's NAPI thread, and the figure is the send
// path alone (as on a NIC, without its TX completion).
func BenchmarkSend(b *testing.B) {
	n := testnet.New(b, testnet.Options{RealServers: 2})
	for i, napi := range []string{"plain", "napi"} {
		rs := n.RealServers[i]
		if napi == "napi" {
			rs.ThreadedNAPI(b)
		}
		hole := blackHoleAddr(b, rs)
		b.Run(napi+"/raw", func(b *testing.B) { benchSend(b, rs, hole, false, false) })
		b.Run(napi+"/packet", func(b *testing.B) { benchSend(b, rs, hole, true, false) })
		b.Run(napi+"/ring", func(b *testing.B) { benchSend(b, rs, hole, true, true) })
	}
}

func benchSend(b *testing.B, rs *testnet.RealServer, hole netip.Addr, frames, ring bool) {
	c, err := newCookies()
	if err != nil {
		b.Fatal(err)
	}
	const batch = 64
	s := newSender(batch)
	if frames {
		err = s.openFrames()
	} else {
		err = s.open(true, false)
	}
	if err != nil {
		b.Fatal(err)
	}
	defer s.close()
	s.noRings = !ring
	ps := make([]probe, batch)
	for i := range ps {
		ps[i] = probe{local: rs.Director, remote: hole, rport: uint16(1 + i)}
		if frames {
			ps[i].f = holeFrame(b, rs, hole)
		}
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu0 := cpuNs(b, unix.RUSAGE_THREAD)
	start := time.Now()
	b.ResetTimer()
	unsent, sent := 0, 0
	for gen := uint16(0); sent < b.N; gen++ {
		k := min(batch, b.N-sent)
		for i := range ps[:k] {
			p := &ps[i]
			p.lport = 61000 + (gen+uint16(i))%1000
			p.seq = c.seq(p.local, p.remote, p.lport, p.rport)
		}
		// Errors: ENOBUFS while the neighbour resolves; a full device
		// queue (the veth peer's ring, when its NAPI thread lags).
		m, _ := s.send(ps[:k])
		if ring && s.ringErr != nil {
			b.Fatal(s.ringErr)
		}
		unsent += k - m
		sent += m
		if unsent > b.N/10+10 {
			b.Fatalf("%d probes not sent (device queue full), %d sent", unsent, sent)
		}
	}
	b.StopTimer()
	wall := time.Since(start)
	b.ReportMetric(float64(b.N)/wall.Seconds(), "probes/s")
	b.ReportMetric(float64(cpuNs(b, unix.RUSAGE_THREAD)-cpu0)/float64(b.N), "cpu-ns/probe")
	b.ReportMetric(float64(unsent)/float64(b.N), "unsent/probe")
}

// holeFrame builds the frame of a probe to the black hole's port.
func holeFrame(tb testing.TB, rs *testnet.RealServer, hole netip.Addr) *frame {
	tb.Helper()
	ifi, err := net.InterfaceByName(rs.Link)
	if err != nil {
		tb.Fatal(err)
	}
	return newFrame(ifi.Index, [6]byte(ifi.HardwareAddr), [6]byte{2, 0, 0, 0, 0, 0xc8}, hole.Is4())
}

// BenchmarkProber10k runs the whole prober (eBPF receiver) against 10,000
// targets (20 addresses x 500 ports: 250 listening, 250 closed) at 10
// probes/s each, for 3 s per iteration (use -benchtime=1x), and reports
// the CPU in cores (LVSPROBE_BENCH_PROBE_INTERVAL changes the 100 ms).
// Every probe must be accounted for: answered, or still in flight when
// the run stops.
//
//	same-cpu: as the machine comes; the real server's kernel work (SYN
//	          handling, SYN-ACK, the RST's processing) runs in the
//	          sender's system calls and is billed to the process
//	          (cpu-cores, from getrusage).
//	split:    the process is pinned to CPU 0 and the real server's
//	          receive path steered to CPU 1 (RPS), the director's to CPU 0;
//	          cpu0-cores is CPU 0's busy time from /proc/stat (the
//	          director's softirq work included; anything else that ran on
//	          CPU 0 too, so an upper bound on a shared machine).
//	napi:     both veth ends run threaded NAPI (testnet ThreadedNAPI): a
//	          send only queues the packet, and each side's receive path
//	          runs in that side's kernel thread. cpu-cores is then the
//	          prober process alone (sending, reading the eBPF results);
//	          napi-cores the director end's thread (the TC program and
//	          the RSTs it sends back: director work a real director does
//	          in softirq; napi-ns/probe the same per probe sent);
//	          rs-napi-cores the real server's side (another machine in
//	          real life). prog-ns/pkt is the TC program's own run time
//	          per packet (kernel.bpf_stats_enabled), stack-rsts/s the
//	          RSTs the director's stack sent (Tcp OutRsts).
//	napi-kernelrst: napi with Config.KernelRST, the old path: the
//	          director's stack receives the answers and sends the RSTs.
//
// Each mode runs with both send paths: raw (raw sockets only) and frames
// (prebuilt frames on the packet socket; the neighbours are resolved
// before the measurement).
func BenchmarkProber10k(b *testing.B) {
	for _, raw := range []bool{true, false} {
		path := map[bool]string{true: "raw", false: "frames"}[raw]
		b.Run("same-cpu/"+path, func(b *testing.B) { benchProber10k(b, modeSameCPU, raw) })
		b.Run("split/"+path, func(b *testing.B) {
			if runtime.NumCPU() < 2 {
				b.Skip("needs two CPUs")
			}
			benchProber10k(b, modeSplit, raw)
		})
		b.Run("napi/"+path, func(b *testing.B) { benchProber10k(b, modeNAPI, raw) })
		// The old path: the director's stack answers each SYN-ACK.
		b.Run("napi-kernelrst/"+path, func(b *testing.B) { benchProber10k(b, modeNAPIKernelRST, raw) })
	}
}

// benchInterval is BenchmarkProber10k's probe interval per target: 100 ms
// (the default of lvsprobe run), or LVSPROBE_BENCH_PROBE_INTERVAL (a Go
// duration), to price a shorter one (docs/benchmarks.md §17.3).
func benchInterval(tb testing.TB) time.Duration {
	v := os.Getenv("LVSPROBE_BENCH_PROBE_INTERVAL")
	if v == "" {
		return 100 * time.Millisecond
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		tb.Fatalf("LVSPROBE_BENCH_PROBE_INTERVAL=%q: want a positive duration", v)
	}
	return d
}

// Where BenchmarkProber10k runs the receive paths.
const (
	modeSameCPU = iota
	modeSplit
	modeNAPI
	modeNAPIKernelRST // napi, the SYN-ACKs left to the director's stack (Config.KernelRST)
)

func benchProber10k(b *testing.B, mode int, raw bool) {
	n := testnet.New(b, testnet.Options{ExtraAddrs: 19})
	rs := n.RealServers[0]
	split := mode == modeSplit
	switch mode {
	case modeSplit:
		splitCPUs(b, rs)
	case modeNAPI, modeNAPIKernelRST:
		rs.ThreadedNAPI(b)
	}
	kernelRST := mode == modeNAPIKernelRST
	if kernelRST {
		mode = modeNAPI
	}
	const open, closed = 250, 250
	for i := range open {
		rs.Listen(b, "tcp", fmt.Sprintf(":%d", 20000+i))
	}
	if !raw {
		for _, a := range rs.Addrs { // resolve the neighbours
			c, err := net.DialTimeout("tcp", netip.AddrPortFrom(a, 20000).String(), 10*time.Second)
			if err != nil {
				b.Fatal(err)
			}
			c.Close()
		}
	}
	p, _ := newTestProber(b, n, Config{Interval: benchInterval(b), PortLo: 62000, PortHi: 62999, SignalBuffer: 1024, RawSockets: raw, KernelRST: kernelRST})
	outRsts0 := directorTCP(b, "OutRsts")
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
	// The receiver's own run time (kernel.bpf_stats_enabled while the
	// benchmark runs): what the program's RST costs the NAPI thread.
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Fatalf("enable BPF stats: %v", err)
	}
	defer stats.Close()
	progTime := func() (time.Duration, uint64) {
		r, ok := p.recv.(*ebpfReceiver)
		if !ok {
			return 0, 0
		}
		st, err := r.sp.Program().Stats()
		if err != nil {
			b.Fatalf("program stats: %v", err)
		}
		return st.Runtime, st.RunCount
	}
	stop := start(b, p)
	b.ResetTimer()
	var cpu, wall time.Duration
	sent0 := testutil.ToFloat64(p.m.sent)
	rt0, rc0 := progTime()
	var cpu0, napiD, napiRS time.Duration
	for range b.N {
		d0, r0 := rs.NAPICPU(b)
		c0, t0, s0 := cpuNs(b, unix.RUSAGE_SELF), time.Now(), cpuBusy(b, 0)
		time.Sleep(3 * time.Second) // the measurement window, not a synchronisation
		cpu += time.Duration(cpuNs(b, unix.RUSAGE_SELF) - c0)
		cpu0 += cpuBusy(b, 0) - s0
		wall += time.Since(t0)
		d1, r1 := rs.NAPICPU(b)
		napiD += d1 - d0
		napiRS += r1 - r0
	}
	b.StopTimer()
	rt1, rc1 := progTime()
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
	// Late and duplicate answers are the real server's doing (an answer
	// after the next probe left; a retransmitted SYN-ACK); anything else
	// invalid on a clean network is the prober's fault.
	bad, slow := 0.0, 0.0
	for _, r := range []string{"truncated", "malformed", "bad_checksum", "not_answer", "bad_cookie", "unknown_target"} {
		bad += testutil.ToFloat64(p.m.invalid.WithLabelValues(r))
	}
	for _, r := range []string{"late", "duplicate"} {
		slow += testutil.ToFloat64(p.m.invalid.WithLabelValues(r))
	}
	b.ReportMetric(cpu.Seconds()/wall.Seconds(), "cpu-cores")
	if split {
		b.ReportMetric(cpu0.Seconds()/wall.Seconds(), "cpu0-cores")
	}
	if mode == modeNAPI {
		b.ReportMetric(napiD.Seconds()/wall.Seconds(), "napi-cores")
		b.ReportMetric(napiRS.Seconds()/wall.Seconds(), "rs-napi-cores")
		if sent > 0 { // the director NAPI thread's CPU per probe, whatever rate was reached
			b.ReportMetric(float64(napiD.Nanoseconds())/sent, "napi-ns/probe")
		}
	}
	b.ReportMetric(sent/wall.Seconds(), "probes/s")
	b.ReportMetric(testutil.ToFloat64(p.m.sentFrames)/testutil.ToFloat64(p.m.sent), "frames/probe")
	b.ReportMetric(misses, "misses")
	b.ReportMetric(testutil.ToFloat64(p.m.sendErrors), "send-errors")
	b.ReportMetric(slow, "late+dup")
	b.ReportMetric(p.kernelLost(), "kernel-lost") // answers the ring buffer had no room for
	if rc1 > rc0 {
		b.ReportMetric(float64(rt1-rt0)/float64(rc1-rc0), "prog-ns/pkt") // per packet the program saw
	}
	// RSTs the director's stack sent (none while the program answers).
	b.ReportMetric(float64(directorTCP(b, "OutRsts")-outRsts0)/wall.Seconds(), "stack-rsts/s")
	// Every probe is accounted for: answered, declared missed, or in
	// flight when the run stopped.
	if total.Answered+uint64(misses)+uint64(outstanding) != total.Sent || bad != 0 {
		b.Errorf("sent %d, answered %d, missed %v, in flight %d, invalid %v, dropped signals %v, kernel lost %v",
			total.Sent, total.Answered, misses, outstanding, bad,
			testutil.ToFloat64(p.m.dropped), p.kernelLost())
	}
}

// blackHoleAddr returns an address on rs's link (198.18.N.200) that the
// director resolves to a MAC address no interface has.
func blackHoleAddr(tb testing.TB, rs *testnet.RealServer) netip.Addr {
	tb.Helper()
	a := rs.Director.As4()
	a[3] = 200
	hole := netip.AddrFrom4(a)
	out, err := exec.Command("ip", "neigh", "replace", hole.String(), "lladdr", "02:00:00:00:00:c8",
		"nud", "permanent", "dev", rs.Link).CombinedOutput()
	if err != nil {
		tb.Fatalf("ip neigh: %v: %s", err, out)
	}
	return hole
}

// splitCPUs pins every thread of the process to CPU 0 and steers the
// receive path of rs's namespace to CPU 1 and the director's end of the
// link to CPU 0 (RPS), so that the real server's kernel work is not
// billed to the prober. Undone on cleanup.
func splitCPUs(tb testing.TB, rs *testnet.RealServer) {
	tb.Helper()
	var all, zero unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil {
		tb.Fatal(err)
	}
	zero.Set(0)
	setAll := func(set *unix.CPUSet) {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			tb.Fatal(err)
		}
		for _, task := range tasks {
			tid, _ := strconv.Atoi(task.Name())
			_ = unix.SchedSetaffinity(tid, set) // a thread may have exited
		}
	}
	setAll(&zero)
	tb.Cleanup(func() { setAll(&all) })
	rps := func(ns, dev, mask string) {
		cmd := exec.Command("nsenter", "--net="+ns, "unshare", "-m", "sh", "-c",
			"mount -t sysfs sysfs /sys && echo "+mask+" > /sys/class/net/"+dev+"/queues/rx-0/rps_cpus")
		if out, err := cmd.CombinedOutput(); err != nil {
			tb.Fatalf("rps on %s: %v: %s", dev, err, out)
		}
	}
	rps("/run/netns/"+rs.Name, "eth0", "2")
	rps(fmt.Sprintf("/proc/%d/ns/net", os.Getpid()), rs.Link, "1")
}

// cpuBusy is the time CPU cpu has spent not idle (user, nice, system,
// irq, softirq, steal), from /proc/stat.
func cpuBusy(tb testing.TB, cpu int) time.Duration {
	tb.Helper()
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		tb.Fatal(err)
	}
	prefix := fmt.Sprintf("cpu%d ", cpu)
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		f := strings.Fields(line)
		var busy int64
		for i, v := range f[1:] {
			if i == 3 || i == 4 { // idle, iowait
				continue
			}
			if i >= 8 { // guest time is already in user
				break
			}
			n, _ := strconv.ParseInt(v, 10, 64)
			busy += n
		}
		return time.Duration(busy) * time.Second / 100 // USER_HZ
	}
	tb.Fatalf("no %q in /proc/stat", prefix)
	return 0
}

// BenchmarkCostPer1000 compares, in one run, the CPU the director spends
// per check of a real nginx: a SYN probe (the whole prober, answered), a
// Go net.Dialer connect+close, lvsprobe's TCP_CHECK (the epoll connector,
// sockets reused), and an HTTP GET on a fresh connection. cpu-ms/1000 is
// the process's CPU per 1,000 checks. The veth runs threaded NAPI
// (LVSPROBE_BENCH_NAPI=off: plain), so nginx's side is not counted, and
// napi-ms/1000 is the director end's NAPI thread: the kernel receiving
// the answers (the TC program, the RST the kernel sends for a SYN
// probe's SYN-ACK), director work that a real director does in softirq.
// On a plain veth both sides' kernel work runs in this process.
func BenchmarkCostPer1000(b *testing.B) {
	n := testnet.New(b, testnet.Options{ExtraAddrs: 9})
	rs := n.RealServers[0]
	if os.Getenv("LVSPROBE_BENCH_NAPI") != "off" {
		rs.ThreadedNAPI(b)
	}
	// nginx listens on 80..99, so the prober has 200 targets and runs at
	// a steady 20,000 probes/s rather than idling between a few.
	var extra strings.Builder
	for port := 81; port < 100; port++ {
		fmt.Fprintf(&extra, "listen %d; ", port)
	}
	rs.StartNginx(b, testnet.NginxOptions{Files: map[string][]byte{"index.html": []byte("ok\n")}, Extra: extra.String()})
	var napi0 time.Duration
	report := func(b *testing.B, cpu0 int64) {
		b.ReportMetric(float64(cpuNs(b, unix.RUSAGE_SELF)-cpu0)/float64(b.N)/1e3, "cpu-ms/1000")
		napi1, _ := rs.NAPICPU(b)
		b.ReportMetric(float64(napi1-napi0)/float64(b.N)/1e3, "napi-ms/1000")
	}
	mark := func(b *testing.B) int64 {
		napi0, _ = rs.NAPICPU(b)
		return cpuNs(b, unix.RUSAGE_SELF)
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
		cpu0 := mark(b)
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
		cpu0 := mark(b)
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
	b.Run("tcpcheck", func(b *testing.B) {
		cks := make([]prober.Checker, len(rs.Addrs))
		for i, a := range rs.Addrs {
			ck, err := prober.NewChecker(&config.Checker{Type: config.TCPCheck, ConnectIP: a, ConnectPort: 80, ConnectTimeout: 5 * time.Second}, prober.CheckerOptions{})
			if err != nil {
				b.Fatal(err)
			}
			cks[i] = ck
		}
		cpu0 := mark(b)
		b.ResetTimer()
		for i := range b.N {
			if res := cks[i%len(cks)].Check(context.Background()); !res.OK {
				b.Fatal(res.Message)
			}
		}
		b.StopTimer()
		report(b, cpu0)
	})
	b.Run("httpget", func(b *testing.B) {
		cl := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		cpu0 := mark(b)
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
