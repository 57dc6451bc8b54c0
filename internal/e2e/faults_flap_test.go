package e2e

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"github.com/lvsprobe/lvsprobe/internal/testnet"
)

// The flapping fault: how long, how often, and what lvsprobe may do.
const (
	flapPeriod    = 200 * time.Millisecond // RS0 is up 200 ms, then down 200 ms
	flapFor       = time.Minute
	flapMaxChange = 12               // IPVS changes of RS0 allowed over the minute (about 150 flaps)
	flapRejoin    = 15 * time.Second // README: re-added within 15 s of recovering
)

// tcpServer is a Go TCP server in a real server's namespace that accepts
// and closes every connection, and can be taken down (its listener
// closed: SYNs are answered with RSTs) and brought up again.
type tcpServer struct {
	t    *testing.T
	rs   *testnet.RealServer
	addr string

	mu sync.Mutex
	ln net.Listener
	wg sync.WaitGroup
}

// newTCPServer starts a server on rs at port; it is stopped on cleanup.
func newTCPServer(t *testing.T, rs *testnet.RealServer, port int) *tcpServer {
	t.Helper()
	s := &tcpServer{t: t, rs: rs, addr: fmt.Sprintf("%s:%d", rs.Addr, port)}
	if err := s.up(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.down(); s.wg.Wait() })
	return s
}

// up opens the listener unless it is open.
func (s *tcpServer) up() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return nil
	}
	var ln net.Listener
	if err := s.rs.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", s.addr)
		return err
	}); err != nil {
		return fmt.Errorf("listen on %s: %w", s.addr, err)
	}
	s.ln = ln
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					s.t.Errorf("accept on %s: %v", s.addr, err)
				}
				return
			}
			_ = c.Close()
		}
	})
	return nil
}

// down closes the listener if it is open.
func (s *tcpServer) down() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		_ = s.ln.Close()
		s.ln = nil
	}
}

// TestFaultFlapping makes RS0 flap — up 200 ms, down 200 ms — for a
// minute while lvsprobe runs with its defaults (SYN probes, detector with
// flap damping) on real IPVS, then leaves it up. The number of IPVS
// changes of RS0 must stay bounded (flapMaxChange, against some 150
// flaps), RS0 must be back within 15 s of recovering, and RS1 must never
// leave the table.
func TestFaultFlapping(t *testing.T) {
	l := newLab(t, 2)
	l.addForeign()
	srv := []*tcpServer{newTCPServer(t, l.rs[0], 8080), newTCPServer(t, l.rs[1], 8080)}
	p := l.startRun(l.writeConfig("faults-flap.conf"), nil)
	svc := tcpService("198.19.0.1", 8080)
	up := with("TCP 198.19.0.1:8080 rr", "  -> RS0:8080 Masq 1 0 0", "  -> RS1:8080 Masq 1 0 0")
	l.waitTable("both real servers in", up, p.proc)
	l.waitFor("first verdicts", func(table) bool { return p.count(`msg="real server up"`) >= 2 }, p.proc)
	key := func(i int) string { return fmt.Sprintf("198.19.0.1:8080 -> %s:8080", l.rs[i].Addr) }
	w := watchDests(t, []config.ServiceKey{svc}, 20*time.Millisecond, flapFor+2*time.Minute)
	before := ipvsOps(l.metricsOf(p))

	start := time.Now()
	flaps := 0
	tick := time.NewTicker(flapPeriod)
	for time.Since(start) < flapFor {
		<-tick.C // the fault's own schedule
		if flaps%2 == 0 {
			srv[0].down()
		} else if err := srv[0].up(); err != nil {
			t.Fatal(err)
		}
		flaps++
	}
	tick.Stop()
	if err := srv[0].up(); err != nil {
		t.Fatal(err)
	}
	recovered := time.Now()
	back := l.waitServing(w, p, key(0), true, 2*flapRejoin)
	rejoin := max(back.Sub(recovered), 0)
	l.requireForeign(l.waitTable("both real servers in at the end", up, p.proc))
	polls := w.stop(t)
	after := ipvsOps(l.metricsOf(p))

	outs, ins := w.counts(key(0))
	var writes float64
	for _, k := range []string{"add_destination", "update_destination", "delete_destination"} {
		writes += after[k] - before[k]
	}
	t.Logf("%d flaps of RS0 in %v: %d removals and %d returns seen in %d netlink polls, %v destination writes; back %v after recovering",
		flaps, flapFor, outs, ins, polls, writes, rejoin.Round(time.Millisecond))
	if o1, i1 := w.counts(key(1)); o1 != 0 || i1 != 0 {
		t.Errorf("RS1 (steady) left the table %d times", o1)
	}
	if outs+ins > flapMaxChange || writes > flapMaxChange {
		t.Errorf("RS0 changed IPVS %d times (%v writes), want at most %d\n%s", outs+ins, writes, flapMaxChange, p.log())
	}
	if rejoin > flapRejoin {
		t.Errorf("RS0 back %v after recovering, want within %v\n%s", rejoin, flapRejoin, p.log())
	}
	if after["add_service"] != before["add_service"] || after["delete_service"] != before["delete_service"] {
		t.Errorf("services written during the flapping: before %v, after %v", before, after)
	}
}
