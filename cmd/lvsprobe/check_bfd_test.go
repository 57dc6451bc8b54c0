package main

import (
	"strings"
	"testing"
)

// TestCheckRefusesBFD: keepalived accepts BFD_CHECK; lvsprobe cannot run
// it, so `lvsprobe check` names it at its FILE:LINE and exits 1, while the
// other new checkers pass.
func TestCheckRefusesBFD(t *testing.T) {
	const src = `bfd_instance rs1 {
   neighbor_ip 198.18.1.1
}
virtual_server 198.18.0.1 80 {
   lb_algo rr
   lb_kind NAT
   protocol TCP
   real_server 198.18.1.1 80 {
      PING_CHECK {
      }
      SMTP_CHECK {
      }
      BFD_CHECK {
         name rs1
      }
   }
}
`
	p := writeConf(t, src)
	code, _, stderr := runCheck(t, "-f", p)
	if code != 1 || !strings.Contains(stderr, p+":13: BFD_CHECK is not supported") || !strings.Contains(stderr, "invalid: 1 error(s)") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	ok := strings.Replace(src, "      BFD_CHECK {\n         name rs1\n      }\n", "", 1)
	if code, stdout, stderr := runCheck(t, "-f", writeConf(t, ok)); code != 0 || !strings.Contains(stdout, "valid: 1 virtual servers") {
		t.Fatalf("without BFD_CHECK: exit %d\n%s%s", code, stdout, stderr)
	}
}
