package config

import (
	"os"
	"path/filepath"
	"testing"
)

func TestLexer(t *testing.T) {
	tests := []struct {
		name string
		src  string
		id   string
		want []string // logical lines, words joined by "|"
	}{
		{"comments", "a b ! c\n# whole\nd # e\n", "", []string{"a|b", "d"}},
		{"escaped comment chars", `a \#b \!c` + "\n", "", []string{"a|#b|!c"}},
		{"comment char in quotes", `a "b # c" d` + "\n", "", []string{"a|b # c|d"}},
		{"braces split", "a { b } c\n", "", []string{"a", "{", "b", "}", "c"}},
		{"brace in quotes", `a "{x}" {` + "\n", "", []string{"a|{x}", "{"}},
		{"crlf", "a b\r\nc\r\n", "", []string{"a|b", "c"}},
		{"definition", "$X=1.2.3.4\na $X ${X}z\n", "", []string{"a|1.2.3.4|1.2.3.4z"}},
		{"longest name", "$AB=2\n$A=1\nx $AB $A\n", "", []string{"x|2|1"}},
		{"undefined stays", "$X=1\na $Y\n", "", []string{"a|$Y"}},
		{"multiline definition", "$M=a 1 \\\n b 2\nx\n$M\n", "", []string{"x", "a|1", "b|2"}},
		{"conditional match", "@one a\n@two b\n@^one c\n@^two d\n", "one", []string{"a", "d"}},
		{"conditional default id is the host name", "@" + defaultConfigID() + " a\n@^" + defaultConfigID() + " b\n", "", []string{"a"}},
		{"standard definitions", "a ${_INSTANCE} $_BANG\n", "me", []string{"a|me"}},
		{"quote splits word", `a"b c"d` + "\n", "", []string{"a|b c|d"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &diags{}
			lx := newLexer(d, tt.id)
			lx.lexData("t.conf", "/t.conf", []byte(tt.src))
			var got []string
			for _, l := range lx.out {
				s := ""
				for i, w := range l.words {
					if i > 0 {
						s += "|"
					}
					s += w
				}
				got = append(got, s)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %q, want %q (diags %v)", got, tt.want, d.errs)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("got %q, want %q", got, tt.want)
				}
			}
		})
	}
}

func TestInclude(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("conf.d/a.conf", vsBlock(" real_server 198.18.1.1 80 {\n TCP_CHECK {\n }\n }"))
	write("conf.d/b.conf", "virtual_server 198.18.0.2 80 {\n lb_algo rr\n lb_kind NAT\n real_server 198.18.1.2 80 {\n }\n}\n")
	main := write("keepalived.conf", "include conf.d/*.conf\ninclude conf.d/none-*.conf\n")
	cfg, err := Load(main, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.VirtualServers) != 2 || len(cfg.Files) != 3 {
		t.Fatalf("got %d virtual servers from %v", len(cfg.VirtualServers), cfg.Files)
	}
	if got := cfg.VirtualServers[0].Pos.File; got != filepath.Join(dir, "conf.d/a.conf") {
		t.Errorf("position names %s", got)
	}

	t.Run("missing file", func(t *testing.T) {
		p := write("missing.conf", "\ninclude nothere.conf\n")
		_, err := Load(p, LoadOptions{})
		if err == nil || err.Error() != p+`:2: include "nothere.conf": no such file` {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("loop", func(t *testing.T) {
		write("loop/a.conf", "include b.conf\n")
		p := write("loop/b.conf", "include a.conf\n")
		_, err := Load(p, LoadOptions{})
		if err == nil {
			t.Fatal("include loop accepted")
		}
		want := filepath.Join(dir, "loop/a.conf") + ":1: include loop: " + filepath.Join(dir, "loop/b.conf") + " includes itself"
		if err.Error() != want {
			t.Fatalf("err = %q, want %q", err, want)
		}
	})
	t.Run("self include", func(t *testing.T) {
		p := write("self.conf", "include self.conf\n")
		if _, err := Load(p, LoadOptions{}); err == nil {
			t.Fatal("self include accepted")
		}
	})
}
