//go:build !linux

package ipvs

import "testing"

func openBenchKernel(b *testing.B) (Backend, func()) {
	b.Skip("IPVS exists only on Linux")
	return nil, nil
}
