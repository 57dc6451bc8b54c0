package loader

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"sync"
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
//
// Each round (-benchtime Nx: N rounds) runs every mode (empty, on, the
// LVSPROBE_BENCH_PASSIVE_OBJS objects; the order rotates) on the same
// traffic, LVSPROBE_BENCH_HTTP_REQUESTS requests (default 2,000) from 4
// client goroutines each. Reported per mode, from the kernel's run-time
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
	const workers = 4
	for _, load := range []struct {
		name      string
		keepAlive bool
	}{{"close", false}, {"keepalive", true}} {
		b.Run(load.name, func(b *testing.B) {
			n := testnet.New(b, testnet.Options{RealServers: 2})
			n.Route(b)
			client, rs := n.RealServers[0], n.RealServers[1]
			rs.StartNginx(b, testnet.NginxOptions{Files: map[string][]byte{"/page": make([]byte, 2048)},
				Extra: "keepalive_requests 1000000;"})
			target := netip.AddrPortFrom(rs.Addr, 80)
			p, modes := busyModes(b, PassiveOptions{NoTracepoints: true}, append(benchRealServers(10000), target))
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
				DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
					return dial(client, target, 5*time.Second)
				},
				DisableKeepAlives:   !load.keepAlive,
				MaxIdleConnsPerHost: workers,
			}
			defer tr.CloseIdleConnections()
			hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			url := "http://" + target.String() + "/page"
			get := func() error {
				resp, err := hc.Get(url)
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
			type total struct{ runtime, runs [2]uint64 }
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
					requests(b, get, per, workers)
					eg1, in1 := progStats(b, m.eg), progStats(b, m.in)
					detach()
					s := sums[m.name]
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
			if c := counters(b, p, target); !load.keepAlive && c.SYNs == 0 {
				b.Errorf("the observer counted no SYN for %s", target)
			}
			b.Logf("%s: %d rounds x %d requests; ns/pkt by round %v", load.name, b.N, per, perRound)
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
