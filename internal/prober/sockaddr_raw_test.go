package prober

import (
	"net/netip"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestRawSockaddrOf: the address TCP_CHECK now builds on the stack for
// every connect is the kernel's layout of the endpoint (family, port in
// network order, address, IPv6 scope, length).
func TestRawSockaddrOf(t *testing.T) {
	for _, tt := range []struct {
		ap   string
		zone uint32
	}{
		{"198.18.1.2:80", 0},
		{"[::ffff:198.18.1.2]:443", 0},
		{"[2001:db8::1]:8080", 0},
		{"[fe80::1%eth0]:22", 7},
	} {
		ap := netip.MustParseAddrPort(tt.ap)
		r := rawSockaddrOf(ap, tt.zone)
		a := ap.Addr()
		if a.Is4() || a.Is4In6() {
			p := (*unix.RawSockaddrInet4)(unsafe.Pointer(&r.buf[0]))
			if p.Family != unix.AF_INET || r.len != unix.SizeofSockaddrInet4 || p.Addr != a.Unmap().As4() {
				t.Errorf("%s: family %d len %d addr %v", tt.ap, p.Family, r.len, p.Addr)
			}
			if port := (*[2]byte)(unsafe.Pointer(&p.Port)); int(port[0])<<8|int(port[1]) != int(ap.Port()) {
				t.Errorf("%s: port bytes %v", tt.ap, port)
			}
			continue
		}
		p := (*unix.RawSockaddrInet6)(unsafe.Pointer(&r.buf[0]))
		if p.Family != unix.AF_INET6 || r.len != unix.SizeofSockaddrInet6 || p.Addr != a.As16() || p.Scope_id != tt.zone {
			t.Errorf("%s: family %d len %d addr %v scope %d", tt.ap, p.Family, r.len, p.Addr, p.Scope_id)
		}
		if port := (*[2]byte)(unsafe.Pointer(&p.Port)); int(port[0])<<8|int(port[1]) != int(ap.Port()) {
			t.Errorf("%s: port bytes %v", tt.ap, port)
		}
	}
}

// TestEndpointOptionsShared: checkers with the same socket options share
// one copy of them, and checkers with none share the empty set (the
// options are kept behind a pointer to keep endpoint at 48 bytes).
func TestEndpointOptionsShared(t *testing.T) {
	a := internOpts(epOpts{bindIf: "eth0", fwmark: 7})
	b := internOpts(epOpts{bindIf: "eth0", fwmark: 7})
	c := internOpts(epOpts{bindIf: "eth0", fwmark: 8})
	if a != b || a == c || *c != (epOpts{bindIf: "eth0", fwmark: 8}) {
		t.Errorf("interned options: %p %p %p", a, b, c)
	}
	if internOpts(epOpts{}) != &noOpts {
		t.Error("no options not shared")
	}
}
