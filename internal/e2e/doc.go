// Package e2e holds the end-to-end tests of lvsprobe on real IPVS: real
// servers in network namespaces running nginx, the lvsprobe binary
// (LVSPROBE_BIN) managing the kernel's table of the director namespace,
// and keepalived 2.2.7 run on the same configurations as the oracle. The
// tests need the kernel lab (scripts/vmtest): the host kernel has no IPVS,
// so there they skip, or fail under LVSPROBE_STRICT=1 or
// LVSPROBE_REQUIRE_IPVS=1.
//
// The package has no code of its own besides this comment; everything is
// in its tests and testdata.
package e2e
