package loader

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/lvsprobe/lvsprobe/internal/testenv"
	"github.com/lvsprobe/lvsprobe/internal/testnet"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// BenchmarkPassiveHTTP measures what the programs add per packet, on
// average over every packet of realistic traffic through the director:
// HTTP requests from a client namespace to nginx in a real server's
// namespace (10,000 real servers configured), the programs on the real
// server's link. Loads:
//
//	close      one request per new connection (handshake, request,
//	           answer, the server's close): what a short-lived client does
//	keepalive  requests over kept-alive connections: data and ACKs only,
//	           once the connections are open
//	close-spread  as close, but spread round-robin over N addresses of the
//	           real server (LVSPROBE_BENCH_HTTP_SPREAD=N, 1..30000; skipped
//	           without it), each a configured real server (addr:80) among
//	           the 10,000: each connection's real-server entry and
//	           endpoint bucket are as cold as on a director whose traffic
//	           goes to many real servers, not one
//
// Each round (-benchtime Nx: N rounds) runs every mode (empty, on, the
// LVSPROBE_BENCH_PASSIVE_OBJS objects; the order rotates) on the same
// traffic, LVSPROBE_BENCH_HTTP_REQUESTS requests (default 2,000) from 4
// client goroutines each. Reported per mode, besides the wall time per
// request (MODE-us/req: a throughput figure, noisy on a shared machine), from the kernel's run-time
// statistics: the mean ns per packet over both hooks (MODE-ns/pkt, a
// total of run time over a total of runs), packets per request, and
// MODE-added-ns/pkt, that mean minus the empty program's (the cost of
// the statistics themselves and of a program that only returns), with the
// least and greatest round's. The per-class figures (BenchmarkPassiveBusy,
// BenchmarkPassivePacketHot) say what each kind of packet costs; this one
// what the mix costs.
func BenchmarkPassiveHTTP(b *testing.B) {
	testenv.RequireRoot(b)
	per := 2000
	if v := os.Getenv("LVSPROBE_BENCH_HTTP_REQUESTS"); v != "" {
		if _, err := fmt.Sscan(v, &per); err != nil || per <= 0 || per > 100000 {
			b.Fatalf("LVSPROBE_BENCH_HTTP_REQUESTS=%q: want 1..100000", v)
		}
	}
	spread := 0
	if v := os.Getenv("LVSPROBE_BENCH_HTTP_SPREAD"); v != "" {
		if _, err := fmt.Sscan(v, &spread); err != nil || spread < 1 || spread > 30000 {
			b.Fatalf("LVSPROBE_BENCH_HTTP_SPREAD=%q: want 1..30000", v)
		}
	}
	const workers = 4
	for _, load := range []struct {
		name      string
		keepAlive bool
		spread    bool
	}{{"close", false, false}, {"keepalive", true, false}, {"close-spread", false, true}} {
		b.Run(load.name, func(b *testing.B) {
			if load.spread && spread == 0 {
				b.Skip("LVSPROBE_BENCH_HTTP_SPREAD unset")
			}
			n := testnet.New(b, testnet.Options{RealServers: 2})
			n.Route(b)
			client, rs := n.RealServers[0], n.RealServers[1]
			rs.StartNginx(b, testnet.NginxOptions{Files: map[string][]byte{"/page": make([]byte, 2048)},
				Extra: "keepalive_requests 1000000;"})
			target := netip.AddrPortFrom(rs.Addr, 80)
			targets := []netip.AddrPort{target}
			configured := append(benchRealServers(10000), target)
			if load.spread {
				targets = spreadAddrs(b, client, rs, spread)
				configured = append(benchRealServers(max(1, 10000-len(targets))), targets...)
			}
			p, modes := busyModes(b, PassiveOptions{NoTracepoints: true}, configured)
			modes = slices.DeleteFunc(modes, func(m busyMode) bool { return m.in == nil }) // the statistics need a program
			link, err := netlink.LinkByName(rs.Link)
			if err != nil {
				b.Fatal(err)
			}
			stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
			if err != nil {
				b.Fatalf("enable stats: %v", err)
			}
			defer stats.Close()
			tr := &http.Transport{
				DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
					to, err := netip.ParseAddrPort(addr)
					if err != nil {
						return nil, fmt.Errorf("dial %s: %w", addr, err)
					}
					return dial(client, to, 5*time.Second)
				},
				DisableKeepAlives:   !load.keepAlive,
				MaxIdleConnsPerHost: workers,
			}
			defer tr.CloseIdleConnections()
			hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			urls := make([]string, len(targets))
			for i, t := range targets {
				urls[i] = "http://" + t.String() + "/page"
			}
			var next atomic.Uint64 // round-robin over urls
			get := func() error {
				resp, err := hc.Get(urls[(next.Add(1)-1)%uint64(len(urls))])
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				if _, err := io.Copy(io.Discard, resp.Body); err != nil {
					return err
				}
				if resp.StatusCode != http.StatusOK {
					return fmt.Errorf("status %s", resp.Status)
				}
				return nil
			}
			if load.keepAlive {
				// Open the connections before any round counts.
				requests(b, get, workers, workers)
			}
			type total struct {
				runtime, runs [2]uint64
				wall          time.Duration
			}
			sums := map[string]*total{}
			perRound := map[string][]float64{} // ns/pkt of each round
			for _, m := range modes {
				sums[m.name] = &total{}
			}
			b.ResetTimer()
			for round := range b.N {
				for j := range modes {
					m := modes[(round+j)%len(modes)]
					detach := m.attach(b, link.Attrs().Index)
					eg0, in0 := progStats(b, m.eg), progStats(b, m.in)
					t0 := time.Now()
					requests(b, get, per, workers)
					s := sums[m.name]
					s.wall += time.Since(t0)
					eg1, in1 := progStats(b, m.eg), progStats(b, m.in)
					detach()
					dt := [2]uint64{uint64(eg1.Runtime - eg0.Runtime), uint64(in1.Runtime - in0.Runtime)}
					dn := [2]uint64{eg1.RunCount - eg0.RunCount, in1.RunCount - in0.RunCount}
					for h := range 2 {
						s.runtime[h] += dt[h]
						s.runs[h] += dn[h]
					}
					if dn[0]+dn[1] > 0 {
						perRound[m.name] = append(perRound[m.name], float64(dt[0]+dt[1])/float64(dn[0]+dn[1]))
					}
				}
			}
			b.StopTimer()
			mean := func(s *total) float64 {
				return float64(s.runtime[0]+s.runtime[1]) / float64(max(1, s.runs[0]+s.runs[1]))
			}
			base := mean(sums["empty"])
			for _, m := range modes {
				s := sums[m.name]
				b.ReportMetric(mean(s), m.name+"-ns/pkt")
				b.ReportMetric(float64(s.runs[0]+s.runs[1])/float64(b.N*per), m.name+"-pkts/req")
				b.ReportMetric(float64(s.wall.Microseconds())/float64(b.N*per), m.name+"-us/req")
				for h, hook := range []string{"egress", "ingress"} {
					b.ReportMetric(float64(s.runtime[h])/float64(max(1, s.runs[h])), m.name+"-"+hook+"-ns/pkt")
				}
				if m.name == "empty" {
					continue
				}
				b.ReportMetric(mean(s)-base, m.name+"-added-ns/pkt")
				var added []float64
				for i, v := range perRound[m.name] {
					if i < len(perRound["empty"]) {
						added = append(added, v-perRound["empty"][i])
					}
				}
				if len(added) > 0 {
					b.ReportMetric(slices.Min(added), m.name+"-min-added-ns/pkt")
					b.ReportMetric(slices.Max(added), m.name+"-max-added-ns/pkt")
				}
			}
			if !load.keepAlive {
				// Each "on" round's requests go to consecutive targets: at
				// least min(per, len(targets)) of them saw a SYN counted.
				c, _, err := p.Counters()
				if err != nil {
					b.Fatal(err)
				}
				seen := 0
				for _, t := range targets {
					if c[t].SYNs > 0 {
						seen++
					}
				}
				if want := min(per, len(targets)); seen < want {
					b.Errorf("the observer counted SYNs for %d of %d real servers, want at least %d", seen, len(targets), want)
				}
			}
			b.Logf("%s: %d rounds x %d requests over %d real servers; ns/pkt by round %v", load.name, b.N, per, len(targets), perRound)
		})
	}
}

// requests runs n calls of get over workers goroutines and fails b on the
// first error.
func requests(b *testing.B, get func() error, n, workers int) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	next := make(chan struct{}, n)
	for range n {
		next <- struct{}{}
	}
	close(next)
	for range workers {
		wg.Go(func() {
			for range next {
				if err := get(); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		b.Fatalf("request: %v", first)
	}
}

// spreadAddrs gives rs n more addresses (/32s on its link, from
// 198.19.128.0/17 less the /24s of rs and client), routes them through rs
// on the director, and returns them at port 80 (nginx listens on the
// wildcard address). The namespace's and the link's teardown remove them.
func spreadAddrs(b *testing.B, client, rs *testnet.RealServer, n int) []netip.AddrPort {
	b.Helper()
	const prefix = "198.19.128.0/17"
	skip := func(a netip.Addr) bool {
		for _, r := range []netip.Addr{client.Addr, rs.Addr} {
			if p, _ := a.Prefix(24); p.Contains(r) {
				return true
			}
		}
		return false
	}
	var out []netip.AddrPort
	var batch strings.Builder
	pfx := netip.MustParsePrefix(prefix)
	for a := pfx.Addr(); len(out) < n; a = a.Next() {
		if !pfx.Contains(a) {
			b.Fatalf("%s holds fewer than %d addresses", prefix, n)
		}
		if last := a.As4()[3]; last == 0 || last == 255 || skip(a) {
			continue
		}
		out = append(out, netip.AddrPortFrom(a, 80))
		fmt.Fprintf(&batch, "address add %s/32 dev eth0\n", a)
	}
	file := b.TempDir() + "/spread.batch"
	if err := os.WriteFile(file, []byte(batch.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	rs.Run(b, "ip", "-batch", file)
	if msg, err := exec.Command("ip", "route", "add", prefix, "via", rs.Addr.String(), "dev", rs.Link).CombinedOutput(); err != nil {
		b.Fatalf("route %s through %s: %v: %s", prefix, rs.Link, err, msg)
	}
	b.Cleanup(func() { _ = exec.Command("ip", "route", "del", prefix).Run() }) // gone with the link too
	return out
}
