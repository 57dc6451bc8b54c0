package synprobe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The TX ring's geometry: 2,048 slots of 128 bytes (a TPACKET_V2 header
// padded to 32 bytes, a virtio-net header of 10, then the frame, at most
// 78 bytes): 256 KiB per interface. At 100,000 probes/s a slot comes
// round again after 20 ms, far longer than a frame stays in the kernel.
const (
	ringSlotSize = 128
	ringSlots    = 2048
	ringDataOff  = 32 // TPACKET_ALIGN(sizeof(struct tpacket2_hdr)): where the slot's data starts
	vnetHdrLen   = 10 // sizeof(struct virtio_net_hdr), before the frame
	// ringChunk is the most frames one send() hands over: a burst
	// larger than the device queue (a veth's ring holds 256 packets)
	// would find it full. Between two sends the device's consumer (a
	// NAPI thread) gets its turn.
	ringChunk = 64
)

// txRing is a PACKET_TX_RING (TPACKET_V2) on a packet socket bound to one
// interface: the prober writes a tick's frames into the mmap'd slots and
// one send() hands them all to the kernel, which builds each packet's
// buffer from the slot (the headers copied, the rest referenced) and
// passes it straight to the driver (PACKET_QDISC_BYPASS). Against
// sendmmsg it saves, per probe, the message header and iovec copies, the
// address and device lookups, and the scheduler check between messages
// (where the woken receive thread of a veth peer preempted the sender).
//
// The slot to fill next is ours to track; the kernel keeps its own head
// and sends, from it, every slot marked TP_STATUS_SEND_REQUEST. Both stay
// equal because a send leaves no slot marked: slots it did not send are
// taken back (see flush). It is not safe for concurrent use.
type txRing struct {
	fd      int
	ifindex int
	mem     []byte
	next    int // the slot to fill next
	filled  int // slots filled since the last flush, from first
	first   int // the first slot filled since the last flush
}

// openTxRing opens a packet socket with a TX ring bound to ifindex. It
// receives nothing (protocol 0).
func openTxRing(ifindex int) (_ *txRing, err error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open tx ring socket: %w", err)
	}
	defer func() {
		if err != nil {
			unix.Close(fd)
		}
	}()
	for _, o := range []struct {
		name     string
		opt, val int
	}{
		{"version", unix.PACKET_VERSION, unix.TPACKET_V2},
		{"qdisc bypass", unix.PACKET_QDISC_BYPASS, 1},
		// A slot the kernel cannot parse is skipped, not left to
		// block the ring (there should be none).
		{"loss", unix.PACKET_LOSS, 1},
		// Each slot starts with a virtio-net header whose hdr_len
		// covers the whole frame: the kernel then copies the frame
		// into the packet's buffer instead of referencing the ring's
		// page, which a veth (and anything else that forwards or
		// clones the packet) would copy into a freshly allocated page
		// per packet, and the slot is free again as soon as the packet
		// leaves its sender's hands.
		{"vnet header", unix.PACKET_VNET_HDR, 1},
	} {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, o.opt, o.val); err != nil {
			return nil, fmt.Errorf("tx ring socket %s: %w", o.name, err)
		}
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
	page := os.Getpagesize()
	if page%ringSlotSize != 0 {
		return nil, fmt.Errorf("tx ring: page size %d is not a multiple of %d", page, ringSlotSize)
	}
	req := unix.TpacketReq{
		Block_size: uint32(page),
		Block_nr:   uint32(ringSlots * ringSlotSize / page),
		Frame_size: ringSlotSize,
		Frame_nr:   ringSlots,
	}
	if err := unix.SetsockoptTpacketReq(fd, unix.SOL_PACKET, unix.PACKET_TX_RING, &req); err != nil {
		return nil, fmt.Errorf("set up tx ring: %w", err)
	}
	mem, err := unix.Mmap(fd, 0, ringSlots*ringSlotSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map tx ring: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifindex}); err != nil {
		unix.Munmap(mem)
		return nil, fmt.Errorf("bind tx ring to interface %d: %w", ifindex, err)
	}
	return &txRing{fd: fd, ifindex: ifindex, mem: mem}, nil
}

// status is the status word of slot i.
func (r *txRing) status(i int) *uint32 {
	return (*uint32)(unsafe.Pointer(&r.mem[i*ringSlotSize]))
}

// put writes pr's frame into the next slot and marks it for sending; it
// reports false when that slot is still in the kernel's hands (the ring
// is full).
func (r *txRing) put(pr *probe) bool {
	st := r.status(r.next)
	if atomic.LoadUint32(st)&(unix.TP_STATUS_SEND_REQUEST|unix.TP_STATUS_SENDING) != 0 {
		return false
	}
	slot := r.mem[r.next*ringSlotSize : (r.next+1)*ringSlotSize]
	n := pr.f.put(slot[ringDataOff+vnetHdrLen:], pr.lport, pr.seq)
	// The virtio-net header: no flags, no GSO, hdr_len (little endian)
	// the whole frame; csum_start and csum_offset unused.
	clear(slot[ringDataOff : ringDataOff+vnetHdrLen])
	binary.LittleEndian.PutUint16(slot[ringDataOff+2:], uint16(n))
	*(*uint32)(unsafe.Pointer(&slot[4])) = uint32(vnetHdrLen + n) // tp_len
	if r.filled == 0 {
		r.first = r.next
	}
	r.filled++
	atomic.StoreUint32(st, unix.TP_STATUS_SEND_REQUEST)
	r.next = (r.next + 1) % ringSlots
	return true
}

// flush hands the filled slots to the kernel with one send() and returns
// how many left. Slots the kernel did not take (device queue full, send
// buffer full) are taken back and counted as not sent; the kernel's head
// then points at the first of them, which is where the next put writes.
func (r *txRing) flush() (int, error) {
	if r.filled == 0 {
		return 0, nil
	}
	// Never blocks (MSG_DONTWAIT), so a raw system call: the scheduler
	// need not hand the P to another thread meanwhile.
	_, _, errno := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(r.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	var err error
	if errno != 0 {
		err = fmt.Errorf("send tx ring: %w", errno)
	}
	sent := r.filled
	for k := range r.filled {
		i := (r.first + k) % ringSlots
		if atomic.LoadUint32(r.status(i))&unix.TP_STATUS_SEND_REQUEST == 0 {
			continue
		}
		// The kernel stopped here: this slot and the rest stay ours.
		sent = k
		for j := k; j < r.filled; j++ {
			atomic.StoreUint32(r.status((r.first+j)%ringSlots), unix.TP_STATUS_AVAILABLE)
		}
		r.next = i
		if err == nil {
			err = errors.New("send tx ring: slots left unsent")
		}
		break
	}
	r.filled = 0
	return sent, err
}

func (r *txRing) close() error {
	return errors.Join(unix.Munmap(r.mem), unix.Close(r.fd))
}
