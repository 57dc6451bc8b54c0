package config

import (
	"testing"
)

// TestCheckerResolution covers what the new checkers take from the file:
// SMTP_CHECK's hosts-only rule, FILE_CHECK's file and weight inherited
// from track_file, DNS_CHECK's types and default name, misc_timeout from
// the virtual server's delay_loop.
func TestCheckerResolution(t *testing.T) {
	src := `track_file maint {
   file /run/maint
   weight -3 reverse
}
track_file nofile {
   weight 2
}
virtual_server 198.18.0.1 80 {
   delay_loop 7
   lb_algo rr
   lb_kind NAT
   protocol TCP
   real_server 198.18.1.1 80 {
      SMTP_CHECK {
         host {
            connect_ip 198.18.1.9
         }
      }
      SMTP_CHECK {
         connect_port 2525
         host {
            connect_ip 198.18.1.9
         }
      }
      FILE_CHECK {
         track_file maint
      }
      FILE_CHECK {
         weight 5
         track_file maint
      }
      DNS_CHECK {
         type rrsig
      }
      MISC_CHECK {
         misc_path /bin/true
         delay_loop 2
      }
   }
}
`
	cfg, diags := parseString(t, src, LoadOptions{})
	if cfg == nil {
		t.Fatalf("parse failed: %v", diags)
	}
	ck := cfg.VirtualServers[0].RealServers[0].Checkers
	if len(ck) != 6 {
		t.Fatalf("%d checkers", len(ck))
	}
	if s := ck[0].SMTP; !s.HostsOnly || len(s.Hosts) != 1 || s.HeloName != "smtpchecker.keepalived.org" {
		t.Errorf("SMTP with hosts only: %+v", s)
	}
	if s := ck[1].SMTP; s.HostsOnly || ck[1].ConnectPort != 2525 {
		t.Errorf("SMTP with its own connect_port: %+v", s)
	}
	if f := ck[2].File; f.Path != "/run/maint" || f.Weight != -3 || !f.Reverse {
		t.Errorf("FILE_CHECK inheriting: %+v", f)
	}
	if f := ck[3].File; f.Path != "/run/maint" || f.Weight != 5 || f.Reverse {
		t.Errorf("FILE_CHECK with its own weight: %+v", f)
	}
	if d := ck[4].DNS; d.Type != "RRSIG" || d.Name != "." {
		t.Errorf("DNS_CHECK: %+v", d)
	}
	if m := ck[5].Misc; m.Timeout.Seconds() != 7 {
		t.Errorf("misc_timeout %v, want the virtual server's delay_loop 7s", m.Timeout)
	}

	// a track_file without a file is dropped, as keepalived drops it
	bad := `track_file nofile {
   weight 2
}
virtual_server 198.18.0.1 80 {
   lb_algo rr
   lb_kind NAT
   protocol TCP
   real_server 198.18.1.1 80 {
      FILE_CHECK {
         track_file nofile
      }
   }
}
`
	if _, diags := parseString(t, bad, LoadOptions{}); !hasMsg(diags, "track_file nofile not found") {
		t.Errorf("track_file without a file: %v", diags)
	}
}
