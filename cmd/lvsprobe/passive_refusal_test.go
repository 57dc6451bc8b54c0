package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"github.com/lvsprobe/lvsprobe/internal/loader"
	"github.com/lvsprobe/lvsprobe/internal/prober"
	"github.com/lvsprobe/lvsprobe/internal/testenv"
	"github.com/lvsprobe/lvsprobe/internal/testnet"
)

// refusalConf checks two real servers rarely (delay_loop 30), so that only
// a fast signal can take one out within the test's time.
const refusalConf = `virtual_server 198.18.250.1 80 {
    delay_loop 30
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server ADDR 8080 {
        TCP_CHECK {
            connect_timeout 1
        }
    }
    real_server ADDR 8081 {
        TCP_CHECK {
            connect_timeout 1
        }
    }
}
`

// TestRunPassiveRefusalWithSynProbe runs `lvsprobe run` with every
// default on (the SYN receiver and the passive programs share the
// director's real-server link) and the SYN probes too rare to matter
// (1 h): one client connect refused by a real server whose listener went
// away makes the detector suspect it from the passive observer alone, and
// the confirming check takes it out. It needs both halves: the SYN
// receiver letting the packet on to the passive ingress program
// (TC_ACT_UNSPEC), and a refused client connect being a suspicion
// (passiveResetCount).
func TestRunPassiveRefusalWithSynProbe(t *testing.T) {
	n := testnet.New(t, testnet.Options{RealServers: 2})
	n.Route(t)
	client, rs := n.RealServers[0], n.RealServers[1]
	l := rs.Listen(t, "tcp", ":8080")
	go acceptAndReset(l)
	l2 := rs.Listen(t, "tcp", ":8081")
	go acceptAndReset(l2)
	path := filepath.Join(t.TempDir(), "keepalived.conf")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(refusalConf, "ADDR", rs.Addr.String())), 0o644); err != nil {
		t.Fatal(err)
	}
	p := runInProcess(t, slog.LevelDebug, 60*time.Second, "-f", path, "--ipvs=dry-run", "--syn-probe-interval=1h",
		"--metrics-listen=", "--control-socket=")
	// Both eBPF parts on, and the one SYN probe 8080 gets in the test's
	// time answered (the next is an hour later), before the listener goes.
	target := netip.AddrPortFrom(rs.Addr, 8080)
	on, synack := "", false
	deadline := time.After(20 * time.Second)
	for on == "" || !synack {
		select {
		case l := <-p.lines:
			switch {
			case strings.Contains(l, `msg="SYN probes unavailable`):
				testenv.SkipOrFail(t, "SYN probes unavailable: "+l)
			case strings.Contains(l, `msg="passive observation`) && !strings.Contains(l, `msg="passive observation incomplete"`):
				on = l
			case strings.Contains(l, `msg="SYN probe signal changed"`) && strings.Contains(l, "target="+target.String()+" ") &&
				strings.Contains(l, "signal=synack"):
				synack = true
			}
		case <-deadline:
			t.Fatalf("after 20 s: passive observation %q, SYN probe of %s answered %v", on, target, synack)
		case c := <-p.code:
			t.Fatalf("run exited %d", c)
		}
	}
	if !strings.Contains(on, `msg="passive observation on"`) || !strings.Contains(on, "links=["+rs.Link+"]") {
		testenv.SkipOrFail(t, "passive observation not on "+rs.Link+": "+on)
	}
	l.Close()
	// One refused connect at a time, a few times over: the observer's
	// first read of its counters (its baseline) may come just after the
	// first one. Each is its own report, so one refusal must suspect.
	suspected := false
	for try := 0; try < 5 && !suspected; try++ {
		var err error
		client.Do(func() error {
			_, err = net.DialTimeout("tcp", target.String(), 5*time.Second)
			return nil
		})
		if err == nil {
			t.Fatal("dial to a closed listener succeeded")
		}
		_, suspected = p.line(2*time.Second, `msg="fast signal`, "endpoint="+target.String(), "signal=passive_reset")
	}
	if !suspected {
		t.Fatal("no suspicion from refused client connects")
	}
	down := p.must(`msg="real server down"`, target.String())
	if !strings.Contains(down, "first_signal=passive_reset") {
		t.Errorf("removal not from the passive signal: %s", down)
	}
	p.stop()
}

func TestPassiveResetCount(t *testing.T) {
	tests := []struct {
		name string
		c    loader.ClientCounters
		want int
	}{
		{"one reset of a connection", loader.ClientCounters{Resets: 1}, 1},
		{"two resets of connections", loader.ClientCounters{Resets: 2}, 2},
		{"one refused connect", loader.ClientCounters{Resets: 1, Refused: 1}, prober.DefaultPassiveResets},
		{"many resets, one refused", loader.ClientCounters{Resets: 9, Refused: 1}, 9},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := passiveResetCount(tc.c); got != tc.want {
				t.Errorf("passiveResetCount(%+v) = %d, want %d", tc.c, got, tc.want)
			}
		})
	}
}

// TestPassiveEventEvidence: each passive event, alone, handed to a
// detector as consume hands it: a refused client connect (EventRefused)
// is a suspicion at once, worth what the counters' refusal is
// (passiveResetCount), as a retransmitted client SYN is; one reset of a
// connection is not; the director's own reset is no evidence.
func TestPassiveEventEvidence(t *testing.T) {
	rs := netip.MustParseAddrPort("198.18.1.2:8080")
	tests := []struct {
		kind      loader.EventKind
		evidence  bool
		wantState string
	}{
		{loader.EventReset, true, "up"},
		{loader.EventRefused, true, "suspect"},
		{loader.EventSYNRetransmit, true, "suspect"},
		{loader.EventOwnReset, false, "up"},
	}
	cfg, err := config.Parse("evidence.conf", []byte(strings.ReplaceAll(refusalConf, "ADDR", rs.Addr().String())), config.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.kind.String(), func(t *testing.T) {
			s, err := prober.NewScheduler(cfg, prober.SchedulerOptions{})
			if err != nil {
				t.Fatal(err)
			}
			det, err := prober.NewDetector(s, prober.DetectorOptions{Mode: prober.DetectFast})
			if err != nil {
				t.Fatal(err)
			}
			ev, ok := eventEvidence(loader.Event{RealServer: rs, Kind: tc.kind, KtimeNs: loader.Ktime()}, time.Now())
			if ok != tc.evidence {
				t.Fatalf("eventEvidence: evidence %v, want %v", ok, tc.evidence)
			}
			if ok {
				det.Observe(ev)
			}
			if got := endpointState(det, rs); got != tc.wantState {
				t.Errorf("after one %s event: %s, want %s (evidence %+v)", tc.kind, got, tc.wantState, ev)
			}
		})
	}
}

// endpointState is det's state of ep.
func endpointState(det *prober.Detector, ep netip.AddrPort) string {
	for _, e := range det.Status().Endpoints {
		if e.Endpoint == ep {
			return e.State
		}
	}
	return fmt.Sprintf("%s not checked", ep)
}
