package synprobe

import (
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/lvsprobe/lvsprobe/internal/testnet"
	"golang.org/x/sys/unix"
)

// rstCapture records the RSTs from the probes' ports that reach a real
// server's eth0, as its packet socket sees them (PACKET_AUXDATA tells a
// checksum left to offload, CHECKSUM_PARTIAL, from a complete one).
type rstCapture struct {
	fd   int
	done chan struct{}
	mu   sync.Mutex
	seen map[int]int // by family (4, 6): RSTs captured
	// partial counts RSTs whose checksum was left to offload (the field
	// holds the pseudo header's sum), bad those whose checksum, full or
	// partial, is wrong.
	partial, bad int
}

// captureRSTs starts a capture in rs's namespace until the test ends.
func captureRSTs(tb testing.TB, rs *testnet.RealServer, lo, hi uint16) *rstCapture {
	tb.Helper()
	c := &rstCapture{done: make(chan struct{}), seen: map[int]int{}}
	err := rs.Do(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		c.fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		if err := unix.SetsockoptInt(c.fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
			return err
		}
		tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
		if err := unix.SetsockoptTimeval(c.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return err
		}
		return unix.Bind(c.fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index})
	})
	if err != nil {
		tb.Fatalf("capture in %s: %v", rs.Name, err)
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		buf, oob := make([]byte, 2048), make([]byte, 256)
		for {
			select {
			case <-c.done:
				return
			default:
			}
			n, oobn, _, from, err := unix.Recvmsg(c.fd, buf, oob, 0)
			if err != nil {
				continue // the receive timeout: look at done again
			}
			if ll, ok := from.(*unix.SockaddrLinklayer); !ok || ll.Pkttype == unix.PACKET_OUTGOING {
				continue
			}
			c.record(buf[:n], oob[:oobn], lo, hi)
		}
	}()
	tb.Cleanup(func() {
		c.stop()
		<-stopped
		unix.Close(c.fd)
	})
	return c
}

func (c *rstCapture) stop() {
	select {
	case <-c.done:
	default:
		close(c.done)
	}
}

// record checks one frame: a RST from a probe port gets its checksum
// verified, fully or, if left to offload, as the pseudo header's sum.
func (c *rstCapture) record(f, oob []byte, lo, hi uint16) {
	if len(f) < 14 {
		return
	}
	var src, dst netip.Addr
	var seg []byte
	family := 0
	switch binary.BigEndian.Uint16(f[12:]) {
	case unix.ETH_P_IP:
		ip := f[14:]
		if len(ip) < 20 || ip[9] != unix.IPPROTO_TCP {
			return
		}
		hl, tot := int(ip[0]&15)*4, int(binary.BigEndian.Uint16(ip[2:]))
		if tot > len(ip) || hl > tot {
			return
		}
		src, dst, seg, family = netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20])), ip[hl:tot], 4
	case unix.ETH_P_IPV6:
		ip := f[14:]
		if len(ip) < 40 || ip[6] != unix.IPPROTO_TCP {
			return
		}
		pl := int(binary.BigEndian.Uint16(ip[4:]))
		if 40+pl > len(ip) {
			return
		}
		src, dst, seg, family = netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40])), ip[40:40+pl], 6
	default:
		return
	}
	if len(seg) < 20 || seg[13]&0x04 == 0 {
		return
	}
	if sp := binary.BigEndian.Uint16(seg); sp < lo || sp > hi {
		return
	}
	partial := false
	if msgs, err := unix.ParseSocketControlMessage(oob); err == nil {
		for _, m := range msgs {
			if m.Header.Level == unix.SOL_PACKET && m.Header.Type == unix.PACKET_AUXDATA && len(m.Data) >= int(unsafe.Sizeof(unix.TpacketAuxdata{})) {
				aux := (*unix.TpacketAuxdata)(unsafe.Pointer(&m.Data[0]))
				partial = aux.Status&unix.TP_STATUS_CSUMNOTREADY != 0
			}
		}
	}
	ps := pseudoSum(src, dst, len(seg))
	var ok bool
	if partial {
		ok = binary.BigEndian.Uint16(seg[16:]) == fold(ps)
	} else {
		ok = fold(sum16(ps, seg)) == 0xffff
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen[family]++
	if partial {
		c.partial++
	}
	if !ok {
		c.bad++
	}
}

// counts returns what was captured so far.
func (c *rstCapture) counts() (seen map[int]int, partial, bad int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen = map[int]int{4: c.seen[4], 6: c.seen[6]}
	return seen, c.partial, c.bad
}
