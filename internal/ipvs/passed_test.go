package ipvs

import "testing"

func TestPassed(t *testing.T) {
	h := newHarness(t, configOf(virtualServer("198.18.0.1", 80, realServer("198.18.1.1", 80, 1))))
	early := h.r.Passed()
	select {
	case <-early:
		t.Fatal("passed before any pass")
	default:
	}
	h.pass()
	for i, ch := range []<-chan struct{}{early, h.r.Passed()} { // asked before and after
		select {
		case <-ch:
		default:
			t.Fatalf("channel %d not closed after the first pass", i)
		}
	}
	h.pass() // a second pass must not close it again (that would panic)
}
