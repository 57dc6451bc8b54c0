package synprobe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"
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
	// ringRetry is how soon the send loop tries again to send the
	// frames a full device queue left waiting in a ring.
	ringRetry = time.Millisecond
	// ringMaxStalls is how many flushes in a row may send nothing
	// before the frames waiting are given up (100 ms of retries).
	ringMaxStalls = 100
)

// txRing is a PACKET_TX_RING (TPACKET_V2) on a packet socket bound to one
// interface: the prober writes a tick's frames into the mmap'd slots and
// one send() hands them all to the kernel, which copies each into a packet
// buffer and passes it straight to the driver (PACKET_QDISC_BYPASS).
// Against sendmmsg it saves, per probe, the message header and iovec
// copies, the address and device lookups, and the scheduler check between
// messages (where the woken receive thread of a veth peer preempted the
// sender at every packet).
//
// The kernel keeps a head and sends, from it, every slot marked
// TP_STATUS_SEND_REQUEST, in order, until one is not; it stops early when
// the device's queue is full, and the slots it did not take stay marked.
// The ring is thus also the queue in front of the device: marked slots
// wait for the next send (the next tick at the latest), and a probe is
// lost only when every slot is taken. head mirrors the kernel's head. It
// is not safe for concurrent use.
type txRing struct {
	fd      int
	ifindex int
	mem     []byte
	head    int // the first slot marked for sending (the kernel's head)
	queued  int // slots marked for sending, from head
	fresh   int // slots marked since the last flush
	stalls  int // flushes in a row that sent none of the queued slots
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

// put writes pr's frame into the next free slot and marks it for
// sending; it reports false when there is none (the ring is full).
func (r *txRing) put(pr *probe) bool {
	if r.queued == ringSlots {
		return false
	}
	i := (r.head + r.queued) % ringSlots
	st := r.status(i)
	if atomic.LoadUint32(st)&(unix.TP_STATUS_SEND_REQUEST|unix.TP_STATUS_SENDING) != 0 {
		return false // still in the kernel's hands
	}
	slot := r.mem[i*ringSlotSize : (i+1)*ringSlotSize]
	n := pr.f.put(slot[ringDataOff+vnetHdrLen:], pr.local, pr.remote, pr.lport, pr.rport, pr.seq)
	// The virtio-net header: no flags, no GSO, hdr_len (little endian)
	// the whole frame; csum_start and csum_offset unused.
	clear(slot[ringDataOff : ringDataOff+vnetHdrLen])
	binary.LittleEndian.PutUint16(slot[ringDataOff+2:], uint16(n))
	*(*uint32)(unsafe.Pointer(&slot[4])) = uint32(vnetHdrLen + n) // tp_len
	atomic.StoreUint32(st, unix.TP_STATUS_SEND_REQUEST)
	r.queued++
	r.fresh++
	return true
}

// flush hands the marked slots to the kernel with one send() and returns
// how many frames it gave up on. Slots a full device queue could not take
// stay marked for the next flush, unless flushes have made no progress
// for ringMaxStalls in a row (a stuck device: a probe that late is of no
// use). Any other error (the interface down or gone) gives them up at
// once. The slots given up are free again: the kernel's head stays at
// the first of them, which is where the next put writes.
func (r *txRing) flush() (dropped int) {
	r.fresh = 0
	if r.queued == 0 {
		return 0
	}
	// Never blocks (MSG_DONTWAIT), so a raw system call: the scheduler
	// need not hand the P to another thread meanwhile.
	_, _, errno := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(r.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	taken := 0
	for r.queued > 0 && atomic.LoadUint32(r.status(r.head))&unix.TP_STATUS_SEND_REQUEST == 0 {
		r.head = (r.head + 1) % ringSlots
		r.queued--
		taken++
	}
	if taken > 0 {
		r.stalls = 0
	} else if r.queued > 0 {
		r.stalls++
	}
	full := errno == 0 || errno == unix.ENOBUFS || errno == unix.EAGAIN
	if r.queued == 0 || (full && r.stalls < ringMaxStalls) {
		return 0
	}
	dropped = r.queued
	for k := range r.queued {
		atomic.StoreUint32(r.status((r.head+k)%ringSlots), unix.TP_STATUS_AVAILABLE)
	}
	r.queued, r.stalls = 0, 0
	return dropped
}

func (r *txRing) close() error {
	return errors.Join(unix.Munmap(r.mem), unix.Close(r.fd))
}
