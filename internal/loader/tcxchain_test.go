package loader

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/testnet"
	"github.com/vishvananda/netlink"
)

// TestSynProbeLetsPassiveSee: the SYN receiver and the passive observer
// share the director's real-server link, attached in either order
// (`lvsprobe run` attaches the receiver first, the passive observer loads
// in the background; a link added by a reload may get them the other way
// round). Client traffic through the director must reach both: connects
// from source ports in the receiver's range to a closed port are SYNs out
// and refusal RSTs back, which the passive programs count and the
// receiver matches. Before the receiver returned TC_ACT_UNSPEC, its
// TC_ACT_OK ended the TCX chain (and the clsact filter list) and the
// passive observer saw client SYNs and never a SYN-ACK or a RST; before it
// attached at the head of the TCX chain, a passive program attached
// first (TC_ACT_OK) hid every answer from it.
func TestSynProbeLetsPassiveSee(t *testing.T) {
	for _, clsact := range []bool{false, true} {
		for _, synFirst := range []bool{true, false} {
			t.Run(fmt.Sprintf("clsact=%v/synprobe_first=%v", clsact, synFirst), func(t *testing.T) {
				s := mustLoad(t, RingBuffer) // ports 40000-40999
				s.opts.ForceClsact = clsact
				p := mustLoadPassive(t, PassiveOptions{NoTracepoints: true, ForceClsact: clsact})
				n := testnet.New(t, testnet.Options{RealServers: 2})
				n.Route(t)
				client, rs := n.RealServers[0], n.RealServers[1]
				l, err := netlink.LinkByName(rs.Link)
				if err != nil {
					t.Fatal(err)
				}
				attach := []func() error{
					func() error { _, err := s.Attach(l.Attrs().Index); return err },
					func() error { _, err := p.Attach(l.Attrs().Index); return err },
				}
				if !synFirst {
					attach[0], attach[1] = attach[1], attach[0]
				}
				for _, a := range attach {
					if err := a(); err != nil {
						t.Fatalf("attach: %v", err)
					}
				}
				target := netip.AddrPortFrom(rs.Addr, 8081) // nothing listens
				if err := p.SetRealServers([]netip.AddrPort{target}); err != nil {
					t.Fatal(err)
				}
				const conns = 3
				for i := range conns {
					err := client.Do(func() error {
						d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{Port: 40100 + i}}
						c, err := d.Dial("tcp4", target.String())
						if err == nil {
							c.Close()
						}
						return err
					})
					if !errors.Is(err, syscall.ECONNREFUSED) {
						t.Fatalf("dial %s = %v, want refused", target, err)
					}
				}
				c := counters(t, p, target)
				if c.SYNs != conns || c.Resets != conns || c.Refused != conns {
					t.Errorf("passive counters %+v: want %d SYNs (egress), %d resets and %d refused (ingress)", c, conns, conns, conns)
				}
				st, err := s.Stats()
				if err != nil {
					t.Fatal(err)
				}
				if st.Matched != conns {
					t.Errorf("SYN receiver matched %d RSTs, want %d", st.Matched, conns)
				}
			})
		}
	}
}

// tcActUnspec is TC_ACT_UNSPEC (TCX_NEXT, -1) as BPF_PROG_TEST_RUN
// returns it.
const tcActUnspec = ^uint32(0)
