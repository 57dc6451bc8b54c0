package synprobe

import (
	"testing"
	"unsafe"
)

// TestMemoryLayout guards the size of what the prober keeps per target
// (10,000 at 10,000 real servers): at or below a Go size class
// (docs/benchmarks.md §8.9).
func TestMemoryLayout(t *testing.T) {
	for _, tt := range []struct {
		name      string
		size, max uintptr
	}{
		{"target", unsafe.Sizeof(target{}), 192},
		{"frame", unsafe.Sizeof(frame{}), 128},
	} {
		if tt.size > tt.max {
			t.Errorf("%s is %d bytes, more than its budget of %d", tt.name, tt.size, tt.max)
		}
	}
}
