package main

import (
	"bytes"
	"encoding/json"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

// sampleStatus is a status document with every field set.
func sampleStatus() *statusDoc {
	w, p := 3, 1.5
	q := false
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return &statusDoc{Format: statusFormat, Version: "v1", PID: 42, Now: at, Config: "/etc/keepalived/keepalived.conf", ConfigLoadedAt: at,
		Reloading: true, LastReload: &reloadResult{At: at, Trigger: "SIGHUP", Errors: []string{"k.conf:3: real server weight: invalid number 'x'"}},
		Heartbeat: at, Detector: "fast",
		Services: []statusService{{VirtualServer: "TCP 198.18.0.1:80", Service: "TCP 198.18.0.1:80", Scheduler: "wrr", Persistence: 300, QuorumUp: &q,
			RealServers: []statusRealServer{{Address: "198.18.1.2:80", Forward: "Masq", Weight: 3, IPVSWeight: &w, State: "down", LastCheck: at,
				Latency: 0.002, Reason: "HTTP_GET 198.18.1.2:80: status 500\x1b[31m", FlapPenalty: &p, DetectorState: "suspect",
				Checks: []statusCheck{{Checker: "HTTP_GET 198.18.1.2:80", Position: "k.conf:9", State: "down", Retries: 1, LastCheck: at, Latency: 0.002, Result: "status 500", Next: at}}}}}}}
}

// TestDecodeStatus checks the decoder's verdicts on documents a client
// may meet.
func TestDecodeStatus(t *testing.T) {
	good, _ := json.Marshal(sampleStatus())
	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		{"valid", string(good), ""},
		{"unknown fields allowed", `{"format":1,"services":[],"future":{"x":1}}`, ""},
		{"other format", `{"format":2,"services":[]}`, "format 2"},
		{"no format", `{"services":[]}`, "format 0"},
		{"not json", `<html>`, "decode status"},
		{"empty", ``, "decode status"},
		{"unnamed service", `{"format":1,"services":[{"service":""}]}`, "without a name"},
		{"wrong type", `{"format":1,"pid":"x"}`, "decode status"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeStatus(strings.NewReader(tt.in))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("error %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestRenderStatus checks the operator's table on the sample document.
func TestRenderStatus(t *testing.T) {
	var b bytes.Buffer
	if err := renderStatus(&b, sampleStatus()); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"RELOAD IN PROGRESS", "LAST RELOAD REJECTED (SIGHUP", "k.conf:3: real server weight",
		"TCP 198.18.0.1:80", "wrr persistent 300", "LOST", "-> 198.18.1.2:80", "Masq", "down (suspect)", "1.50", "2ms", "detector fast"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasSuffix(l, " ") {
			t.Errorf("trailing spaces: %q", l)
		}
	}
	if strings.Contains(out, "\x1b") {
		t.Errorf("a control character from a check result reached the terminal:\n%q", out)
	}
}

// FuzzDecodeStatus feeds arbitrary bytes to the status decoder: it must
// not panic, a document it accepts must render, and re-encoding it must
// decode to the same document.
func FuzzDecodeStatus(f *testing.F) {
	good, _ := json.Marshal(sampleStatus())
	f.Add(good)
	f.Add([]byte(`{"format":1,"services":[{"service":"FWM 7","real_servers":[{"address":"x","ipvs_weight":null}]}]}`))
	f.Add([]byte(`{"format":1}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := decodeStatus(bytes.NewReader(data))
		if err != nil {
			return
		}
		if err := renderStatus(io.Discard, d); err != nil {
			t.Fatalf("render: %v", err)
		}
		again, err := json.Marshal(d)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		d2, err := decodeStatus(bytes.NewReader(again))
		if err != nil {
			t.Fatalf("decode of the re-encoding: %v\n%s", err, again)
		}
		if !reflect.DeepEqual(normalize(d), normalize(d2)) {
			t.Fatalf("round trip changed the document:\n%s\n%s", mustJSON(d), mustJSON(d2))
		}
	})
}

// normalize drops what JSON does not round-trip exactly (time zones and
// monotonic readings of times, nil vs empty slices) by encoding once.
func normalize(d *statusDoc) string {
	b, _ := json.Marshal(d)
	return string(b)
}
