package loader

import (
	"errors"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// TestAnswerNotifier: SYN-ACKs put in the ring buffer wake nobody; a RST
// wakes the notifier's Wait; Interrupt ends it.
func TestAnswerNotifier(t *testing.T) {
	s := mustLoad(t, RingBuffer)
	n, err := s.NewAnswerNotifier()
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	run := func(flags byte) {
		t.Helper()
		if _, err := s.Program().Run(&ebpf.RunOptions{Data: frame(40000, flags, 7)}); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		run(0x12) // SYN-ACK
	}
	// Bounded look for a wake-up that must not come: the program asks
	// for none (a wrong one comes within microseconds, from irq_work).
	var evs [2]unix.EpollEvent
	k, err := unix.EpollWait(n.epfd, evs[:], 200)
	if err != nil {
		t.Fatal(err)
	}
	if k != 0 {
		t.Fatalf("SYN-ACKs woke the notifier (%d events)", k)
	}
	woke := make(chan error, 1)
	go func() { woke <- n.Wait() }()
	run(0x14) // RST
	select {
	case err := <-woke:
		if err != nil {
			t.Fatalf("Wait after a RST: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a RST did not wake the notifier")
	}
	if err := n.Interrupt(); err != nil {
		t.Fatal(err)
	}
	if err := n.Wait(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Wait after Interrupt = %v, want ErrClosed", err)
	}
}
