package synprobe

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// frameRefresh is how often the prebuilt frames are checked against the
// kernel's neighbour table and links.
const frameRefresh = time.Second

// usableNeigh are the neighbour states whose MAC address the kernel
// itself would send to.
const usableNeigh = unix.NUD_REACHABLE | unix.NUD_STALE | unix.NUD_DELAY | unix.NUD_PROBE | unix.NUD_PERMANENT

// hopKey is a next hop on an interface.
type hopKey struct {
	ifindex int
	addr    netip.Addr
}

// l2Table reads the MAC addresses of the Ethernet links and of the
// resolved neighbours.
func (p *Prober) l2Table() (links map[int][6]byte, neigh map[hopKey][6]byte, err error) {
	p.nlMu.Lock()
	defer p.nlMu.Unlock()
	ls, err := p.nl.LinkList()
	if err != nil {
		return nil, nil, fmt.Errorf("list links: %w", err)
	}
	links = map[int][6]byte{}
	for _, l := range ls {
		a := l.Attrs()
		if a.EncapType == "ether" && len(a.HardwareAddr) == 6 && a.Flags&net.FlagUp != 0 {
			links[a.Index] = [6]byte(a.HardwareAddr)
		}
	}
	ns, err := p.nl.NeighList(0, netlink.FAMILY_ALL)
	if err != nil {
		return nil, nil, fmt.Errorf("list neighbours: %w", err)
	}
	neigh = map[hopKey][6]byte{}
	for _, n := range ns {
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok || n.State&usableNeigh == 0 || len(n.HardwareAddr) != 6 {
			continue
		}
		neigh[hopKey{n.LinkIndex, ip.Unmap()}] = [6]byte(n.HardwareAddr)
	}
	return links, neigh, nil
}

// refreshFrames gives every target whose next hop the kernel has resolved
// on an Ethernet link a frame for the packet-socket sender, rebuilds the
// frames whose path changed, and takes them away where the path is gone
// (those targets go back to the raw sockets, whose kernel path resolves
// the neighbour again). Where the packet socket cannot be opened or the
// tables read, every frame is taken away and the error returned.
func (p *Prober) refreshFrames() error {
	p.sendMu.Lock()
	err := p.snd.openFrames()
	p.sendMu.Unlock()
	var links map[int][6]byte
	var neigh map[hopKey][6]byte
	if err == nil {
		links, neigh, err = p.l2Table()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	shared := map[frameKey]*frame{} // one frame a link and next hop: the paths through it share it
	for _, pa := range p.paths {
		src, ok := links[pa.ifindex]
		var dst [6]byte
		if ok {
			dst, ok = neigh[hopKey{pa.ifindex, pa.hop}]
		}
		switch {
		case !ok:
			pa.frame = nil
		default:
			k := frameKey{ifindex: pa.ifindex, src: src, dst: dst, is4: pa.local.Is4()}
			f := shared[k]
			if f == nil {
				if f = pa.frame; f == nil || f.key() != k {
					f = newFrame(k.ifindex, src, dst, k.is4) // a new path, or the path changed
				}
				shared[k] = f
			}
			pa.frame = f
		}
	}
	return err
}

// frameKey is the path a frame serves: targets with the same key share
// one frame.
type frameKey struct {
	ifindex  int
	src, dst [6]byte
	is4      bool
}

// key returns the path f serves.
func (f *frame) key() frameKey {
	return frameKey{ifindex: f.ifindex, src: f.src, dst: f.dst, is4: f.proto == 0x0800}
}
