package loader

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/testnet"
	"github.com/vishvananda/netlink"
)

// TestSynProbeLetsPassiveSee: the SYN receiver and the passive observer
// share the director's real-server link, the receiver attached first (as
// `lvsprobe run` does: the passive observer loads in the background).
// Client traffic through the director must still reach the passive
// ingress program: a connect to a closed port is a SYN out and a refusal
// RST back, both counted. Before the receiver returned TC_ACT_UNSPEC, its
// TC_ACT_OK ended the TCX chain (and the clsact filter list) and the
// passive observer saw client SYNs and never a SYN-ACK or a RST.
func TestSynProbeLetsPassiveSee(t *testing.T) {
	for _, clsact := range []bool{false, true} {
		t.Run(fmt.Sprintf("clsact=%v", clsact), func(t *testing.T) {
			s := mustLoad(t, RingBuffer)
			s.opts.ForceClsact = clsact
			p := mustLoadPassive(t, PassiveOptions{NoTracepoints: true, ForceClsact: clsact})
			n := testnet.New(t, testnet.Options{RealServers: 2})
			n.Route(t)
			client, rs := n.RealServers[0], n.RealServers[1]
			l, err := netlink.LinkByName(rs.Link)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Attach(l.Attrs().Index); err != nil {
				t.Fatalf("attach the SYN receiver: %v", err)
			}
			if _, err := p.Attach(l.Attrs().Index); err != nil {
				t.Fatalf("attach the passive programs: %v", err)
			}
			target := netip.AddrPortFrom(rs.Addr, 8081) // nothing listens
			if err := p.SetRealServers([]netip.AddrPort{target}); err != nil {
				t.Fatal(err)
			}
			for range 3 {
				if _, err := dial(client, target, 5*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
					t.Fatalf("dial %s = %v, want refused", target, err)
				}
			}
			c := counters(t, p, target)
			if c.SYNs != 3 || c.Resets != 3 || c.Refused != 3 {
				t.Errorf("passive counters %+v: want 3 SYNs (egress), 3 resets and 3 refused (ingress, after the SYN receiver)", c)
			}
		})
	}
}

// tcActUnspec is TC_ACT_UNSPEC (TCX_NEXT, -1) as BPF_PROG_TEST_RUN
// returns it.
const tcActUnspec = ^uint32(0)
