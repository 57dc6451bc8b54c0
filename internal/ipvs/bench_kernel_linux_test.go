//go:build linux

package ipvs

import "testing"

// openBenchKernel opens a Kernel in a fresh network namespace, or skips
// the benchmark where the kernel has no IPVS.
func openBenchKernel(b *testing.B) (Backend, func()) {
	b.Helper()
	requireIPVS(b)
	k, done := kernelInNewNetNS(b)
	return k, done
}
