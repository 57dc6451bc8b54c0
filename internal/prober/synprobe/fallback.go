package synprobe

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/loader"
	"golang.org/x/sys/unix"
)

// packetReceiver is the fallback where eBPF cannot load: an AF_PACKET
// socket (cooked, so packets start at the network header) with a classic
// BPF filter that keeps only SYN-ACKs and RSTs to our port range. Its
// timestamps are taken when Go reads the packet, so its RTTs include the
// socket queueing delay.
type packetReceiver struct{ fd int }

// cbpf is one classic BPF instruction with symbolic jump targets.
type cbpf struct {
	code   uint16
	k      uint32
	jt, jf string // labels; "" means the next instruction
	label  string // this instruction's label
}

// Offsets of the kernel's ancillary data for classic BPF.
const (
	skfAdOff      = 0xfffff000 // SKF_AD_OFF (-0x1000)
	skfAdProtocol = 0
	skfAdPkttype  = 4
)

// answerFilter returns the classic BPF program for the port range.
func answerFilter(r portRange) ([]unix.SockFilter, error) {
	const (
		ldw  = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		ldh  = unix.BPF_LD | unix.BPF_H | unix.BPF_ABS
		ldb  = unix.BPF_LD | unix.BPF_B | unix.BPF_ABS
		ldhx = unix.BPF_LD | unix.BPF_H | unix.BPF_IND
		ldbx = unix.BPF_LD | unix.BPF_B | unix.BPF_IND
		msh  = unix.BPF_LDX | unix.BPF_B | unix.BPF_MSH
		jeq  = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		jge  = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
		jgt  = unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K
		jset = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
		ja   = unix.BPF_JMP | unix.BPF_JA
		and  = unix.BPF_ALU | unix.BPF_AND | unix.BPF_K
		ret  = unix.BPF_RET | unix.BPF_K
	)
	prog := []cbpf{
		{code: ldw, k: skfAdOff + skfAdPkttype},
		{code: jeq, k: unix.PACKET_OUTGOING, jt: "drop"},
		{code: ldh, k: skfAdOff + skfAdProtocol},
		{code: jeq, k: unix.ETH_P_IP, jf: "v6"},
		{code: ldb, k: 9},
		{code: jeq, k: unix.IPPROTO_TCP, jf: "drop"},
		{code: ldh, k: 6},
		{code: jset, k: 0x1fff, jt: "drop"},
		{code: msh, k: 0},
		{code: ldhx, k: 2},
		{code: jge, k: uint32(r.lo), jf: "drop"},
		{code: jgt, k: uint32(r.hi), jt: "drop"},
		{code: ldbx, k: 13},
		{code: ja, jt: "flags"}, // ja uses k; resolved below
		{label: "v6", code: jeq, k: unix.ETH_P_IPV6, jf: "drop"},
		{code: ldb, k: 6},
		{code: jeq, k: unix.IPPROTO_TCP, jf: "drop"},
		{code: ldh, k: 40 + 2},
		{code: jge, k: uint32(r.lo), jf: "drop"},
		{code: jgt, k: uint32(r.hi), jt: "drop"},
		{code: ldb, k: 40 + 13},
		{label: "flags", code: jset, k: flagRST, jt: "accept"},
		{code: and, k: flagSYN | flagACK},
		{code: jeq, k: flagSYN | flagACK, jf: "drop"},
		{label: "accept", code: ret, k: 0xffff},
		{label: "drop", code: ret, k: 0},
	}
	at := map[string]int{}
	for i, in := range prog {
		if in.label != "" {
			at[in.label] = i
		}
	}
	rel := func(i int, l string) (uint32, error) {
		if l == "" {
			return 0, nil
		}
		t, ok := at[l]
		if !ok || t <= i {
			return 0, fmt.Errorf("classic bpf: bad jump to %q", l)
		}
		return uint32(t - i - 1), nil
	}
	out := make([]unix.SockFilter, len(prog))
	for i, in := range prog {
		jt, err := rel(i, in.jt)
		if err != nil {
			return nil, err
		}
		jf, err := rel(i, in.jf)
		if err != nil {
			return nil, err
		}
		out[i] = unix.SockFilter{Code: in.code, Jt: uint8(jt), Jf: uint8(jf), K: in.k}
		if in.code == ja {
			out[i] = unix.SockFilter{Code: in.code, K: jt}
		}
	}
	return out, nil
}

// newPacketReceiver opens the AF_PACKET socket in the caller's network
// namespace, on all interfaces.
func newPacketReceiver(r portRange) (*packetReceiver, error) {
	filter, err := answerFilter(r)
	if err != nil {
		return nil, err
	}
	proto := int(htons(unix.ETH_P_ALL))
	// Open with protocol 0 (receives nothing), filter, then bind: no
	// unfiltered packet can be queued in between.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open packet socket: %w", err)
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("filter packet socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: uint16(proto)}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind packet socket: %w", err)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20)
	return &packetReceiver{fd: fd}, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// packetPoll is how long the fallback receiver waits for a packet before
// it reports the queue drained.
const packetPoll = 2 * time.Millisecond

func (r *packetReceiver) run(ctx context.Context, deliver func(uint64, []byte, int), drained func(uint64)) error {
	buf := make([]byte, 2048)
	pfd := []unix.PollFd{{Fd: int32(r.fd), Events: unix.POLLIN}}
	for ctx.Err() == nil {
		start := loader.Ktime()
		n, _, err := unix.Recvfrom(r.fd, buf, unix.MSG_TRUNC|unix.MSG_DONTWAIT)
		switch {
		case err == nil:
			deliver(loader.Ktime(), buf[:min(n, len(buf))], n)
		case errors.Is(err, unix.EAGAIN):
			// The queue was empty when this read started.
			drained(start)
			if _, err := unix.Poll(pfd, int(packetPoll/time.Millisecond)); err != nil && !errors.Is(err, unix.EINTR) {
				return fmt.Errorf("poll packet socket: %w", err)
			}
		case errors.Is(err, unix.EINTR):
		default:
			return fmt.Errorf("read packet socket: %w", err)
		}
	}
	return ctx.Err()
}

func (r *packetReceiver) close() error { return unix.Close(r.fd) }
func (r *packetReceiver) name() string { return "packet" }

// watch does nothing: the packet socket sees every interface.
func (r *packetReceiver) watch(int) error { return nil }
