//go:build linux

package ipvs

import (
	"encoding/binary"
	"fmt"
	"syscall"

	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ipvsGenlVersion is the version of the IPVS generic-netlink family
// (IPVS_GENL_VERSION).
const ipvsGenlVersion = 1

// genlConn is a generic-netlink socket to the IPVS family, for the
// requests github.com/moby/ipvs cannot make (the tunnel attributes). It
// is bound to the network namespace current when it was opened. It is
// not safe for concurrent use (Kernel serialises it under its mutex).
type genlConn struct {
	sock   *nl.NetlinkSocket
	family uint16
}

// openGenl opens a generic-netlink socket in the calling thread's
// network namespace for the IPVS family with the given id.
func openGenl(family uint16) (*genlConn, error) {
	s, err := nl.GetNetlinkSocketAt(netns.None(), netns.None(), unix.NETLINK_GENERIC)
	if err != nil {
		return nil, fmt.Errorf("open generic netlink socket: %w", err)
	}
	return &genlConn{sock: s, family: family}, nil
}

// close releases the socket.
func (c *genlConn) close() {
	if c != nil && c.sock != nil {
		c.sock.Close()
		c.sock = nil
	}
}

// request sends the IPVS command cmd with attrs (NLM_F_DUMP in flags for
// a dump, otherwise the kernel's acknowledgement is awaited) and returns
// the attribute payload of every reply, the generic-netlink header cut
// off. A kernel error comes back as its syscall.Errno.
func (c *genlConn) request(cmd uint8, flags int, attrs ...*nl.RtAttr) ([][]byte, error) {
	if flags&unix.NLM_F_DUMP == 0 {
		flags |= unix.NLM_F_ACK
	}
	req := nl.NewNetlinkRequest(int(c.family), flags)
	req.AddData(&nl.Genlmsg{Command: cmd, Version: ipvsGenlVersion})
	for _, a := range attrs {
		req.AddData(a)
	}
	if err := c.sock.Send(req); err != nil {
		return nil, fmt.Errorf("send ipvs command %d: %w", cmd, err)
	}
	pid, err := c.sock.GetPid()
	if err != nil {
		return nil, fmt.Errorf("netlink socket pid: %w", err)
	}
	var out [][]byte
	for {
		msgs, _, err := c.sock.Receive()
		if err == unix.EAGAIN || err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("receive ipvs reply: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Seq != req.Seq || m.Header.Pid != pid {
				continue
			}
			switch m.Header.Type {
			case unix.NLMSG_DONE, unix.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if e := int32(binary.NativeEndian.Uint32(m.Data[:4])); e < 0 {
						return nil, syscall.Errno(-e)
					}
				}
				return out, nil
			}
			if len(m.Data) > nl.SizeofGenlmsg {
				out = append(out, m.Data[nl.SizeofGenlmsg:])
			}
			if m.Header.Flags&unix.NLM_F_MULTI == 0 && flags&unix.NLM_F_ACK == 0 {
				return out, nil
			}
		}
	}
}
