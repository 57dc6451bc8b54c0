package e2e

import (
	"testing"

	"github.com/lvsprobe/lvsprobe/internal/testnet"
)

// TestMain makes this test process the director: a network namespace of
// its own, whose IPVS table starts empty and is seen by every program the
// tests start (lvsprobe, keepalived, ipvsadm).
func TestMain(m *testing.M) { testnet.Main(m) }
