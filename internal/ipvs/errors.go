package ipvs

import "errors"

// Errors returned by the backends and the reconciler.
var (
	// ErrNoIPVS means the running kernel has no IPVS: the generic-netlink
	// family "IPVS" is absent (CONFIG_IP_VS off, or ip_vs not loadable).
	ErrNoIPVS = errors.New("kernel has no IPVS (generic netlink family \"IPVS\" not found)")
	// ErrUnsupported means a backend cannot express a requested setting,
	// for example a protocol, forwarding method or tunnel type it has no
	// number for.
	ErrUnsupported = errors.New("not supported by this backend")
)
