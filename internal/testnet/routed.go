package testnet

import (
	"os"
	"testing"
)

// Route makes the director forward between its real servers, as a
// director forwards between clients and real servers: IPv4 forwarding on
// in the director's namespace and, in every real server's, a route to all
// of 198.18.0.0/15 through its director address. One real server can then
// play a client of another, through the director's links. (Plain routing
// stands in for IPVS-NAT on a host without IPVS.)
func (n *Net) Route(tb testing.TB) {
	tb.Helper()
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
		tb.Fatalf("testnet: enable forwarding: %v", err)
	}
	for _, rs := range n.RealServers {
		rs.Run(tb, "ip", "route", "add", "198.18.0.0/15", "via", rs.Director.String())
	}
}

// DirectReturn joins rs and client with a veth pair of their own that
// bypasses the director, and routes rs's packets to client's first
// address over it: client's packets reach rs through the director, rs's
// replies go straight back, as in LVS-DR and LVS-TUN. The link carries no
// address (the neighbours answer ARP for their addresses on any link).
func (rs *RealServer) DirectReturn(tb testing.TB, client *RealServer) {
	tb.Helper()
	a, b := "dr"+rs.Link, "dr"+client.Link
	if len(a) > 15 || len(b) > 15 {
		tb.Fatalf("testnet: link names %s, %s too long", a, b)
	}
	if out, err := client.Command(tb.Context(), "ip", "link", "add", b, "type", "veth", "peer", "name", a,
		"netns", rs.Name).CombinedOutput(); err != nil {
		tb.Fatalf("testnet: add direct link: %v: %s", err, out)
	}
	client.Run(tb, "ip", "link", "set", b, "up")
	rs.Run(tb, "ip", "link", "set", a, "up")
	rs.Run(tb, "ip", "route", "add", client.Addr.String()+"/32", "dev", a)
	if err := waitOperUp(&rs.ns, a); err != nil {
		tb.Fatalf("testnet: %v", err)
	}
}
