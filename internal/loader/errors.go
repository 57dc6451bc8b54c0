package loader

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// Errors returned by the loader.
var (
	// ErrNotSupported means the kernel (or the missing privilege) cannot
	// load or attach the program; the caller should fall back.
	ErrNotSupported = ebpf.ErrNotSupported
	// ErrClosed is returned by readers after Close.
	ErrClosed = errors.New("loader closed")
)

// VerifierLog returns the verifier's full log when err (or an error it
// wraps) is a rejection by the BPF verifier, and "" otherwise.
func VerifierLog(err error) string {
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) {
		return fmt.Sprintf("%+v", ve)
	}
	return ""
}
