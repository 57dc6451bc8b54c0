package loader

import (
	"errors"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/lvsprobe/lvsprobe/internal/testenv"
)

// TestVerifierLog: a program the verifier rejects yields an error whose
// full verifier log VerifierLog returns.
func TestVerifierLog(t *testing.T) {
	testenv.RequireRoot(t)
	_, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type: ebpf.SchedCLS,
		Instructions: asm.Instructions{
			asm.Mov.Reg(asm.R0, asm.R2), // R2 is never written: rejected
			asm.Return(),
		},
		License: "GPL",
	})
	if err == nil {
		t.Fatal("the verifier accepted a read of an uninitialised register")
	}
	wrapped := errors.Join(errors.New("load synprobe"), err)
	log := VerifierLog(wrapped)
	if !strings.Contains(log, "R2 !read_ok") {
		t.Errorf("VerifierLog = %q, want the verifier's complaint about R2", log)
	}
	if VerifierLog(errors.New("other")) != "" {
		t.Error("VerifierLog of a non-verifier error is not empty")
	}
}

// FuzzDecodeRecord feeds arbitrary ring-buffer records to the record
// decoder: it must never panic nor hand out bytes past the record.
func FuzzDecodeRecord(f *testing.F) {
	ok := make([]byte, answerHeader+40)
	ok[12], ok[14] = 40, 4
	f.Add(ok)
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, raw []byte) {
		var a Answer
		if !decodeAnswer(raw, &a) {
			if len(raw) >= answerHeader {
				t.Fatalf("rejected a %d-byte record", len(raw))
			}
			return
		}
		if len(a.Packet) > len(raw)-answerHeader {
			t.Fatalf("packet of %d bytes from a %d-byte record", len(a.Packet), len(raw))
		}
	})
}
