package loader

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// AnswerNotifier waits for the SYN-probe program's wake-ups of its ring
// buffer. The program wakes readers on a RST (a real server that
// stopped listening; at most once a millisecond, so a reader must drain
// again a millisecond after a wake-up to see every RST at once) and once
// when a burst of answers reaches its wake-up threshold, never for a
// single SYN-ACK: a reader that drains on
// its own timer ([AnswerReader]) can wait on a notifier beside it to drain
// a RST at once, and a steady stream of SYN-ACKs wakes nobody. The epoll
// registration is edge-triggered: a wake-up is reported once, however
// many answers are pending. Create it with [SynProbe.NewAnswerNotifier].
type AnswerNotifier struct {
	epfd, evfd int
	mu         sync.Mutex
	closed     bool
}

// NewAnswerNotifier opens a notifier on the ring buffer. Only ring-buffer
// delivery has one.
func (s *SynProbe) NewAnswerNotifier() (*AnswerNotifier, error) {
	if s.opts.Delivery != RingBuffer {
		return nil, fmt.Errorf("answer notifier: delivery is %s", s.opts.Delivery)
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("answer notifier: epoll_create1: %w", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("answer notifier: eventfd: %w", err)
	}
	n := &AnswerNotifier{epfd: epfd, evfd: evfd}
	ring := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: 0}
	stop := unix.EpollEvent{Events: unix.EPOLLIN, Fd: 1}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, s.objs.Answers.FD(), &ring); err != nil {
		n.Close()
		return nil, fmt.Errorf("answer notifier: watch ring buffer: %w", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &stop); err != nil {
		n.Close()
		return nil, fmt.Errorf("answer notifier: watch eventfd: %w", err)
	}
	return n, nil
}

// Wait blocks until the program wakes the ring buffer's readers (nil), or
// until Interrupt ([ErrClosed], then at once on every later call).
func (n *AnswerNotifier) Wait() error {
	var evs [2]unix.EpollEvent
	for {
		k, err := unix.EpollWait(n.epfd, evs[:], -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("answer notifier: epoll_wait: %w", err)
		}
		woken := false
		for _, ev := range evs[:k] {
			if ev.Fd == 1 {
				return ErrClosed
			}
			woken = true
		}
		if woken {
			return nil
		}
	}
}

// Interrupt makes Wait return [ErrClosed], now and from then on.
func (n *AnswerNotifier) Interrupt() error {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	if _, err := unix.Write(n.evfd, one[:]); err != nil && !errors.Is(err, unix.EAGAIN) {
		return fmt.Errorf("answer notifier: interrupt: %w", err)
	}
	return nil
}

// Close releases the notifier. No Wait may be in progress (Interrupt,
// then let it return).
func (n *AnswerNotifier) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	return errors.Join(unix.Close(n.epfd), unix.Close(n.evfd))
}
