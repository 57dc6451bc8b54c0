package prober

import (
	"testing"
	"unsafe"
)

// TestMemoryLayout guards the size of the structures kept once per
// checked endpoint (10,000 of each at 10,000 real servers): each is at or
// below a Go size class, and growing one past it costs the next class for
// every endpoint (docs/benchmarks.md §8.7).
func TestMemoryLayout(t *testing.T) {
	for _, tt := range []struct {
		name      string
		size, max uintptr
	}{
		{"unit", unsafe.Sizeof(unit{}), 288},
		{"tcpChecker", unsafe.Sizeof(tcpChecker{}), 80}, // 144 before its options went behind a shared pointer and its sockaddr onto the stack
		{"endpoint", unsafe.Sizeof(endpoint{}), 48},
		{"realServer", unsafe.Sizeof(realServer{}), 96},
	} {
		if tt.size > tt.max {
			t.Errorf("%s is %d bytes, more than its budget of %d", tt.name, tt.size, tt.max)
		}
	}
}
