package prober

import (
	"fmt"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// Placeholders until the TCP and HTTP checkers land; the engineer who
// writes tcp.go and http.go deletes this file in the same commit.

func newTCPChecker(c *config.Checker, _ CheckerOptions) (Checker, error) {
	return nil, fmt.Errorf("%s %s: %w", c.Pos, c.Type, ErrUnsupported)
}

func newHTTPChecker(c *config.Checker, _ CheckerOptions) (Checker, error) {
	return nil, fmt.Errorf("%s %s: %w", c.Pos, c.Type, ErrUnsupported)
}
