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

// TestAnswerNotifierRSTGap: a RST within the wake gap of the last one that
// woke the readers wakes nobody (the prober's notifier drains once more
// after the gap instead); with a gap of an hour, the second of two RSTs
// must not wake the notifier.
func TestAnswerNotifierRSTGap(t *testing.T) {
	s := mustLoadOpts(t, SynProbeOptions{PortLo: 40000, PortHi: 40999, RSTWakeGap: time.Hour})
	n, err := s.NewAnswerNotifier()
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	rst := func() {
		t.Helper()
		if _, err := s.Program().Run(&ebpf.RunOptions{Data: frame(40000, 0x14, 7)}); err != nil {
			t.Fatal(err)
		}
	}
	var evs [2]unix.EpollEvent
	rst()
	if k, err := unix.EpollWait(n.epfd, evs[:], 10_000); err != nil || k != 1 {
		t.Fatalf("first RST: %d events, %v; want the wake-up", k, err)
	}
	rst()
	// Bounded look for a wake-up that must not come (a wrong one comes
	// within microseconds, from irq_work).
	if k, err := unix.EpollWait(n.epfd, evs[:], 200); err != nil || k != 0 {
		t.Fatalf("second RST within the gap: %d events, %v; want none", k, err)
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Matched != 2 {
		t.Errorf("matched %d RSTs, want 2 (both recorded)", st.Matched)
	}
}
