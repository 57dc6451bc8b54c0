package loader

import (
	"testing"

	"github.com/lvsprobe/lvsprobe/internal/testnet"
)

// TestMain runs the tests inside a director network namespace of their
// own (see testnet.Main): attachments and topologies never touch the
// host's namespace.
func TestMain(m *testing.M) { testnet.Main(m) }
