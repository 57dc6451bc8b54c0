package config

import (
	"net/netip"
	"strconv"
	"strings"
)

// Bounds on group expansion: per virtual server, and for the whole load.
const (
	maxGroupServices = 1 << 16
	maxTotalServices = 1 << 20
)

func (p *parser) group(b *node) {
	name := b.arg(1)
	g := &VirtualServerGroup{Pos: b.pos, Name: name}
	if _, dup := p.cfg.Groups[name]; dup {
		p.errorf(b, "virtual_server_group %s defined twice", name)
	}
	for _, n := range b.children {
		p.noBlock(n)
		if m, ok := p.groupMember(n); ok {
			g.Members = append(g.Members, m)
		}
	}
	if len(g.Members) == 0 {
		p.errorf(b, "virtual server group %s has no entries", name)
		return
	}
	p.cfg.Groups[name] = g
}

func (p *parser) groupMember(n *node) (GroupMember, bool) {
	m := GroupMember{Pos: n.pos}
	if n.keyword() == "fwmark" {
		if !p.need(n, 1) {
			return m, false
		}
		v, err := parseUint(n.arg(1), 0, 1<<32-1)
		if err != nil {
			p.errorf(n, "fwmark %v", err)
			return m, false
		}
		m.FWMark = uint32(v)
		switch f := n.arg(2); f {
		case "", "inet", "inet6":
			m.Family = f
		default:
			p.errorf(n, "fwmark %d family %s unknown", v, f)
			return m, false
		}
		return m, true
	}
	port, err := parsePort(n.arg(1))
	if err != nil {
		p.errorf(n, "%v", err)
		return m, false
	}
	m.Port = port
	first, last, err := parseRange(n.keyword())
	if err != nil {
		p.errorf(n, "%v", err)
		return m, false
	}
	m.First, m.Last = first, last
	return m, true
}

// parseRange reads A.B.C.D, A.B.C.D-E (last octet; last hextet in hex for
// IPv6), A-B (two full addresses) or ADDR/LEN.
func parseRange(s string) (netip.Addr, netip.Addr, error) {
	bad := func(msg string) (netip.Addr, netip.Addr, error) {
		return netip.Addr{}, netip.Addr{}, errorString(msg + " - " + s)
	}
	if addr, bits, ok := strings.Cut(s, "/"); ok {
		a, err := parseAddr(addr)
		if err != nil {
			return bad("invalid virtual server group address")
		}
		l, err := strconv.Atoi(bits)
		if err != nil || l <= 0 || l > a.BitLen() {
			return bad("invalid netmask")
		}
		pfx := netip.PrefixFrom(a, l)
		if pfx.Masked().Addr() != a {
			return bad("address mask bits not empty")
		}
		return a, lastOf(pfx), nil
	}
	addr, end, hasEnd := strings.Cut(s, "-")
	a, err := parseAddr(addr)
	if err != nil {
		return bad("invalid virtual server group address")
	}
	if !hasEnd {
		return a, a, nil
	}
	if a.Is4() && strings.Contains(end, ".") || a.Is6() && strings.Contains(end, ":") {
		e, err := parseAddr(end)
		if err != nil || e.Is4() != a.Is4() {
			return bad("invalid range end")
		}
		if e.Less(a) {
			return bad("address range end is less than address range start")
		}
		return a, e, nil
	}
	base, bitsz := 10, 8
	if a.Is6() {
		base, bitsz = 16, 16
	}
	v, err := strconv.ParseUint(end, base, bitsz)
	if err != nil {
		return bad("invalid range end")
	}
	b := a.AsSlice()
	var start uint64
	if a.Is4() {
		start = uint64(b[3])
		b[3] = byte(v)
	} else {
		start = uint64(b[14])<<8 | uint64(b[15])
		b[14], b[15] = byte(v>>8), byte(v)
	}
	if start >= v {
		return bad("address range end is not greater than address range start")
	}
	e, _ := netip.AddrFromSlice(b)
	return a, e, nil
}

func lastOf(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

type errorString string

func (e errorString) Error() string { return string(e) }

// expand returns the IPVS services of group g for a virtual server of
// protocol proto; ok is false when it would exceed maxGroupServices.
func expandGroup(g *VirtualServerGroup, proto Protocol) ([]ServiceKey, bool) {
	var out []ServiceKey
	for _, m := range g.Members {
		if m.FWMark != 0 || !m.First.IsValid() {
			f := m.Family
			if f == "" {
				f = "inet"
			}
			out = append(out, ServiceKey{Protocol: proto, FWMark: m.FWMark, Family: f})
			continue
		}
		for a := m.First; ; a = a.Next() {
			if len(out) >= maxGroupServices {
				return out, false
			}
			out = append(out, ServiceKey{Protocol: proto, Addr: a, Port: m.Port, Family: family(a)})
			if a == m.Last || !a.Next().IsValid() {
				break
			}
		}
	}
	return out, true
}
