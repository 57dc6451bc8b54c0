package prober

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// BenchmarkDetectorObserve hands the detector the SYN-ACKs of 10,000
// healthy endpoints in batches of 64, as the SYN prober's receiver does:
// the detector's cost per probe answer at steady state.
func BenchmarkDetectorObserve(b *testing.B) {
	const n = 10000
	vs := &config.VirtualServer{Addr: netip.MustParseAddr("198.18.250.1"), Port: 80, Family: "inet", Protocol: config.TCP}
	addrs := make([]netip.AddrPort, n)
	for i := range addrs {
		addrs[i] = netip.MustParseAddrPort(fmt.Sprintf("198.18.%d.%d:80", 1+i/250, 2+i%250))
		vs.RealServers = append(vs.RealServers, &config.RealServer{Addr: addrs[i].Addr(), Port: 80, Weight: 1,
			Checkers: []*config.Checker{{Type: config.TCPCheck, ConnectIP: addrs[i].Addr(), ConnectPort: 80,
				ConnectTimeout: time.Second, DelayLoop: time.Minute}}})
	}
	env := newFakeEnv()
	s, err := NewScheduler(&config.Config{VirtualServers: []*config.VirtualServer{vs}}, SchedulerOptions{NewChecker: env.newChecker})
	if err != nil {
		b.Fatal(err)
	}
	d, err := NewDetector(s, DetectorOptions{})
	if err != nil {
		b.Fatal(err)
	}
	batch := make([]Evidence, 64)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		for j := range batch {
			batch[j] = Evidence{Target: addrs[(i*64+j)%n], Kind: EvidenceSynAck, RTT: 100 * time.Microsecond}
		}
		d.Observe(batch...)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/signal")
}
