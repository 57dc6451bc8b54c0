package main

import (
	"testing"

	"github.com/lvsprobe/lvsprobe/internal/testnet"
)

// TestMain runs the command's tests as the director of a test topology:
// as root, inside a network namespace of their own (see testnet.Main).
func TestMain(m *testing.M) { testnet.Main(m) }
