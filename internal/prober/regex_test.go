package prober

import (
	"errors"
	"testing"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

func TestBodyRegex(t *testing.T) {
	body := []byte("HEADER\nstatus: OK\nload: 0.42\n")
	tests := []struct {
		name    string
		url     config.URL
		pass    bool
		wantErr error
	}{
		{"match", config.URL{Regex: `status: OK`}, true, nil},
		{"miss", config.URL{Regex: `status: FAIL`}, false, nil},
		{"no match inverts", config.URL{Regex: `status: FAIL`, RegexNoMatch: true}, true, nil},
		{"caseless", config.URL{Regex: `STATUS: ok`, RegexOptions: []string{"caseless"}}, true, nil},
		{"case matters", config.URL{Regex: `STATUS: ok`}, false, nil},
		{"multiline", config.URL{Regex: `^status`, RegexOptions: []string{"multiline"}}, true, nil},
		{"not multiline", config.URL{Regex: `^status`}, false, nil},
		{"dotall", config.URL{Regex: `HEADER.status`, RegexOptions: []string{"dotall"}}, true, nil},
		{"no dotall", config.URL{Regex: `HEADER.status`}, false, nil},
		{"harmless options", config.URL{Regex: `load`, RegexOptions: []string{"utf", "no_start_optimize", "use_offset_limit"}}, true, nil},
		{"min offset skips", config.URL{Regex: `HEADER`, RegexMinOffset: 1}, false, nil},
		{"min offset finds later", config.URL{Regex: `load`, RegexMinOffset: 10}, true, nil},
		{"max offset allows", config.URL{Regex: `status`, RegexMaxOffset: 7}, true, nil},
		{"max offset forbids", config.URL{Regex: `load`, RegexMaxOffset: 7}, false, nil},
		{"min past body", config.URL{Regex: `x*`, RegexMinOffset: 1000}, false, nil},
		{"extended refused", config.URL{Regex: `a`, RegexOptions: []string{"extended"}}, false, ErrUnsupported},
		{"ucp refused", config.URL{Regex: `\d`, RegexOptions: []string{"ucp"}}, false, ErrUnsupported},
		{"backreference refused", config.URL{Regex: `(a)\1`}, false, nil},
		{"offsets reversed", config.URL{Regex: `a`, RegexMinOffset: 5, RegexMaxOffset: 2}, false, errConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			re, err := newBodyRegex(&tt.url)
			if tt.wantErr != nil || tt.name == "backreference refused" {
				if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := re.check(body); (err == nil) != tt.pass {
				t.Fatalf("check = %v, want pass=%v", err, tt.pass)
			}
		})
	}
	if re, err := newBodyRegex(&config.URL{}); re != nil || err != nil {
		t.Fatalf("no regex: %v, %v", re, err)
	}
}
