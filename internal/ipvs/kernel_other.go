//go:build !linux

package ipvs

import (
	"fmt"
	"log/slog"
	"runtime"
)

// Kernel is the Backend over the kernel's IPVS table; it exists only on
// Linux.
type Kernel struct{ DryRun }

// NewKernel always fails outside Linux, with an error wrapping ErrNoIPVS.
func NewKernel(_ *slog.Logger) (*Kernel, error) {
	return nil, fmt.Errorf("ipvs on %s: %w", runtime.GOOS, ErrNoIPVS)
}
