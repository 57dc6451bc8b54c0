package testnet

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// TCPState is a socket state as /proc/net/tcp numbers it.
type TCPState uint8

// TCP states this package's users look for.
const (
	TCPEstablished TCPState = 0x01
	TCPTimeWait    TCPState = 0x06
	TCPListen      TCPState = 0x0a
)

// TCPSocket is one line of /proc/net/tcp or /proc/net/tcp6.
type TCPSocket struct {
	Local  netip.AddrPort
	Remote netip.AddrPort
	State  TCPState
}

// errProcNetTCP reports a malformed line.
var errProcNetTCP = errors.New("malformed /proc/net/tcp line")

// TCPSockets lists the TCP sockets of the calling process's network
// namespace (the director's, under [Main]), IPv4 and IPv6.
func TCPSockets() ([]TCPSocket, error) {
	var all []TCPSocket
	for _, p := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(p)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("open %s: %w", p, err)
		}
		s, err := ParseProcNetTCP(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", p, err)
		}
		all = append(all, s...)
	}
	return all, nil
}

// CountTCP counts the director's sockets in state whose remote address is
// remote (any remote when remote is invalid).
func CountTCP(state TCPState, remote netip.Addr) (int, error) {
	socks, err := TCPSockets()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range socks {
		if s.State == state && (!remote.IsValid() || s.Remote.Addr() == remote) {
			n++
		}
	}
	return n, nil
}

// ParseProcNetTCP parses the text of /proc/net/tcp or /proc/net/tcp6 (the
// header line first).
func ParseProcNetTCP(r io.Reader) ([]TCPSocket, error) {
	sc := bufio.NewScanner(r)
	var out []TCPSocket
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) < 4 {
			if len(f) == 0 {
				continue
			}
			return nil, fmt.Errorf("%w: %q", errProcNetTCP, sc.Text())
		}
		local, err := parseHexAddrPort(f[1])
		if err != nil {
			return nil, err
		}
		remote, err := parseHexAddrPort(f[2])
		if err != nil {
			return nil, err
		}
		st, err := strconv.ParseUint(f[3], 16, 8)
		if err != nil {
			return nil, fmt.Errorf("%w: state %q", errProcNetTCP, f[3])
		}
		out = append(out, TCPSocket{Local: local, Remote: remote, State: TCPState(st)})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("scan: %w", err)
	}
	return out, nil
}

// parseHexAddrPort parses "0100007F:0050" (the address as the kernel
// stores it: 32-bit words in host byte order, little-endian here).
func parseHexAddrPort(s string) (netip.AddrPort, error) {
	a, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("%w: address %q", errProcNetTCP, s)
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: port %q", errProcNetTCP, s)
	}
	raw, err := hex.DecodeString(a)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, fmt.Errorf("%w: address %q", errProcNetTCP, s)
	}
	for i := 0; i < len(raw); i += 4 {
		binary.BigEndian.PutUint32(raw[i:], binary.LittleEndian.Uint32(raw[i:]))
	}
	addr, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(addr.Unmap(), uint16(port)), nil
}
