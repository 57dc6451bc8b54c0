package prober

import (
	"fmt"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// unsupportedError names a checker block lvsprobe cannot run.
func unsupportedError(c *config.Checker) error {
	if c.Type == config.BFDCheck {
		return fmt.Errorf("%s: BFD_CHECK is not supported: lvsprobe has no BFD (RFC 5880) sessions; "+
			"keep this real server on keepalived, or check it with PING_CHECK or TCP_CHECK: %w", c.Pos, ErrUnsupported)
	}
	return fmt.Errorf("%s: %s: %w", c.Pos, c.Type, ErrUnsupported)
}

// Unsupported returns an error for every checker block of cfg that
// lvsprobe cannot run (BFD_CHECK), each naming the block's FILE:LINE, in
// file order. `lvsprobe check` refuses such a file; `lvsprobe run` fails
// to start on it.
func Unsupported(cfg *config.Config) []error {
	var errs []error
	seen := map[config.Pos]bool{}
	for _, vs := range cfg.VirtualServers {
		for _, rs := range vs.RealServers {
			for _, c := range rs.Checkers {
				switch c.Type {
				case config.TCPCheck, config.HTTPGet, config.SSLGet, config.MiscCheck, config.DNSCheck,
					config.UDPCheck, config.PingCheck, config.SMTPCheck, config.FileCheck:
					continue
				}
				if !seen[c.Pos] { // a group's real server appears under each of its services
					seen[c.Pos] = true
					errs = append(errs, unsupportedError(c))
				}
			}
		}
	}
	return errs
}
