package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Limits that keep a load bounded whatever the input.
const (
	maxFileSize     = 64 << 20 // bytes per file
	maxLineLen      = 64 << 10 // bytes per line, after expansion
	maxIncludeDepth = 32
	maxExpansions   = 64 // $NAME replacements per line
	maxFiles        = 4096
	maxTotalExpand  = 1 << 16  // $NAME replacements and multiline lines per load
	maxExpandBytes  = 16 << 20 // bytes produced by $NAME replacement per load
)

// line is one logical line: the words of a statement, or a lone "{" or "}".
// keepalived splits a physical line at every brace outside quotes.
type line struct {
	pos   Pos
	words []string
	raw   string // the decommented text, for keywords that re-read it with escapes
}

// definition is a `$NAME=value` parameter; a multiline one holds its lines.
type definition struct {
	lines []string
}

// lexer turns files into logical lines, as keepalived's read_line does:
// comments, @id conditionals, $NAME definitions, includes, brace splitting.
type lexer struct {
	d        *diags
	configID string
	defs     map[string]*definition
	files    []string
	seen     map[string]bool
	stack    []string
	out      []line     // logical lines, when sink is nil
	sink     func(line) // receives each logical line as it is made
	// pending multiline definition being read
	multi *definition
	// expansions done so far, bounded by maxTotalExpand
	expansions   int
	expandBytes  int
	expandFailed bool
}

func newLexer(d *diags, configID string) *lexer {
	if configID == "" {
		configID = defaultConfigID()
	}
	return &lexer{d: d, configID: configID, defs: map[string]*definition{}, seen: map[string]bool{}}
}

// readFile lexes one file given by path (read from disk).
func (lx *lexer) readFile(from Pos, path string) {
	if len(lx.files) >= maxFiles {
		lx.d.errorf(from, "too many configuration files")
		return
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	for _, s := range lx.stack {
		if s == abs {
			lx.d.errorf(from, fmt.Sprintf("include loop: %s includes itself", path))
			return
		}
	}
	if len(lx.stack) >= maxIncludeDepth {
		lx.d.errorf(from, fmt.Sprintf("includes nested deeper than %d", maxIncludeDepth))
		return
	}
	fi, err := os.Stat(path)
	if err != nil {
		if from.Line == 0 {
			lx.d.errorf(from, fmt.Sprintf("cannot read: %v", unwrapPathErr(err)))
		} else {
			lx.d.errorf(from, fmt.Sprintf("read %s: %v", path, unwrapPathErr(err)))
		}
		return
	}
	if !fi.Mode().IsRegular() {
		lx.d.errorf(from, fmt.Sprintf("%s is not a regular file", path))
		return
	}
	if fi.Size() > maxFileSize {
		lx.d.errorf(from, fmt.Sprintf("%s is larger than %d bytes", path, maxFileSize))
		return
	}
	data, err := os.ReadFile(path)
	if err != nil {
		lx.d.errorf(from, fmt.Sprintf("read %s: %v", path, unwrapPathErr(err)))
		return
	}
	lx.lexData(path, abs, data)
}

func unwrapPathErr(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// lexData lexes the contents of one file; name is used in positions and
// abs to detect include loops.
func (lx *lexer) lexData(name, abs string, data []byte) {
	lx.files = append(lx.files, name)
	lx.seen[abs] = true
	lx.stack = append(lx.stack, abs)
	defer func() { lx.stack = lx.stack[:len(lx.stack)-1] }()

	dir := filepath.Dir(name)
	lineNo := 0
	// One conversion: every line, word and value is a substring of text.
	text := string(data)
	for len(text) > 0 {
		var phys string
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			phys, text = text[:i], text[i+1:]
		} else {
			phys, text = text, ""
		}
		lineNo++
		pos := Pos{File: name, Line: lineNo}
		if len(phys) > maxLineLen {
			lx.d.errorf(pos, fmt.Sprintf("line longer than %d bytes", maxLineLen))
			lx.endMulti()
			continue
		}
		if strings.IndexByte(phys, 0) >= 0 {
			lx.d.errorf(pos, "NUL byte in line")
			lx.endMulti()
			continue
		}
		lx.physical(pos, dir, strings.TrimRight(phys, "\r"))
	}
	lx.endMulti()
}

func (lx *lexer) endMulti() { lx.multi = nil }

// physical handles one physical line.
func (lx *lexer) physical(pos Pos, dir, s string) {
	if s == "" {
		lx.endMulti()
		return
	}
	s, cont := decomment(s, lx.d, pos)
	if lx.multi != nil {
		// continuation line of a multiline definition
		if s != "" {
			lx.multi.lines = append(lx.multi.lines, s)
		}
		if !cont {
			lx.endMulti()
		}
		return
	}
	if cont {
		s += `\`
	}
	if s == "" {
		return
	}
	lx.logical(pos, dir, s, 0)
}

// logical processes a decommented line: conditionals, definitions,
// expansion, include, then brace splitting.
func (lx *lexer) logical(pos Pos, dir, s string, depth int) {
	for iter := 0; ; iter++ {
		if iter > maxExpansions {
			lx.d.errorf(pos, "too many $ parameter expansions (recursive definition?)")
			return
		}
		if s[0] == '@' {
			rest, ok := lx.conditional(s)
			if !ok {
				return
			}
			s = rest
			if s == "" {
				return
			}
		}
		if s[0] == '$' {
			if lx.definition(pos, s) {
				return
			}
		}
		if strings.HasPrefix(s, "~SEQ") || strings.HasPrefix(s, "~LST") {
			lx.d.errorf(pos, s[:4]+" is not supported by lvsprobe")
			return
		}
		if !strings.Contains(s, "$") {
			break
		}
		ns, extra, changed := lx.expand(pos, s)
		if !changed {
			break
		}
		lx.expansions += 1 + len(extra)
		lx.expandBytes += len(ns)
		if lx.expansions > maxTotalExpand || lx.expandBytes > maxExpandBytes {
			if !lx.expandFailed {
				lx.d.errorf(pos, fmt.Sprintf("too many $ parameter expansions (more than %d, or %d bytes)", maxTotalExpand, maxExpandBytes))
			}
			lx.expandFailed = true
			return
		}
		ns, _ = decomment(ns, lx.d, pos)
		if ns == "" {
			return
		}
		if len(extra) > 0 {
			if depth >= maxIncludeDepth {
				lx.d.errorf(pos, "multiline $ definitions nested too deeply")
				return
			}
			lx.logical(pos, dir, ns, depth+1)
			for _, e := range extra {
				if e != "" {
					lx.logical(pos, dir, e, depth+1)
				}
			}
			return
		}
		s = ns
		if len(s) > maxLineLen {
			lx.d.errorf(pos, fmt.Sprintf("line longer than %d bytes after $ expansion", maxLineLen))
			return
		}
		if s[0] != '@' && !strings.Contains(s, "$") {
			break
		}
	}
	lx.emitOrInclude(pos, dir, s)
}

func (lx *lexer) emitOrInclude(pos Pos, dir, s string) {
	if pattern, ok := isInclude(s); ok {
		lx.include(pos, dir, pattern)
		return
	}
	lx.split(pos, s)
}

// conditional applies an @id / @^id prefix; ok is false when the line is
// not for this instance.
func (lx *lexer) conditional(s string) (string, bool) {
	neg := strings.HasPrefix(s, "@^")
	ofs := 1
	if neg {
		ofs = 2
	}
	sp := strings.IndexAny(s[ofs:], " \t")
	if sp < 0 {
		return "", false
	}
	id := s[ofs : ofs+sp]
	match := lx.configID != "" && id == lx.configID
	if match == neg {
		return "", false
	}
	return strings.TrimLeft(s[ofs+sp:], " \t"), true
}

// definition records `$NAME=value`; it reports whether s was one.
func (lx *lexer) definition(pos Pos, s string) bool {
	if len(s) < 2 || !(isAlpha(s[1]) || s[1] == '_') {
		return false
	}
	i := 2
	for i < len(s) && (isAlnum(s[i]) || s[i] == '_') {
		i++
	}
	name := s[1:i]
	j := i
	for j < len(s) && (s[j] == ' ' || s[j] == '\t') {
		j++
	}
	if j >= len(s) || s[j] != '=' {
		return false
	}
	val := strings.TrimLeft(s[j+1:], " \t")
	def := &definition{}
	if strings.HasSuffix(val, `\`) {
		val = strings.TrimRight(strings.TrimSuffix(val, `\`), " \t")
		if val != "" {
			def.lines = append(def.lines, val)
		}
		lx.multi = def
	} else {
		def.lines = []string{val}
	}
	_ = pos
	lx.defs[name] = def
	return true
}

// expand replaces $NAME and ${NAME}. A multiline definition puts its first
// line in place and returns the others as extra lines that follow.
func (lx *lexer) expand(pos Pos, s string) (string, []string, bool) {
	var b strings.Builder
	changed := false
	var extra []string
	for i := 0; i < len(s); {
		c := s[i]
		if c != '$' || i+1 >= len(s) {
			b.WriteByte(c)
			i++
			continue
		}
		var name string
		var end int
		if s[i+1] == '{' {
			k := strings.IndexByte(s[i+2:], '}')
			if k < 0 {
				b.WriteByte(c)
				i++
				continue
			}
			name, end = s[i+2:i+2+k], i+3+k
		} else {
			k := i + 1
			for k < len(s) && (isAlnum(s[k]) || s[k] == '_') {
				k++
			}
			// keepalived matches the longest defined name that is a prefix
			name, end = s[i+1:k], k
			for len(name) > 0 && lx.lookup(name) == nil {
				name = name[:len(name)-1]
				end--
			}
		}
		def := lx.lookup(name)
		if name == "" || def == nil {
			b.WriteByte(c)
			i++
			continue
		}
		changed = true
		if len(def.lines) > 0 {
			b.WriteString(def.lines[0])
		}
		if len(def.lines) > 1 && extra == nil {
			extra = def.lines[1:]
		}
		i = end
		if b.Len() > maxLineLen {
			lx.d.errorf(pos, fmt.Sprintf("line longer than %d bytes after $ expansion", maxLineLen))
			return "", nil, true
		}
	}
	return b.String(), extra, changed
}

// lookup returns the definition of name: the user's, else one of
// keepalived's standard ones ($_PWD, $_INSTANCE, $_HASH, $_BANG).
func (lx *lexer) lookup(name string) *definition {
	if d := lx.defs[name]; d != nil {
		return d
	}
	switch name {
	case "_HASH":
		return &definition{lines: []string{"#"}}
	case "_BANG":
		return &definition{lines: []string{"!"}}
	case "_INSTANCE":
		return &definition{lines: []string{lx.configID}}
	case "_PWD":
		if len(lx.stack) > 0 {
			return &definition{lines: []string{filepath.Dir(lx.stack[len(lx.stack)-1])}}
		}
	}
	return nil
}

// isInclude recognises keepalived's include forms: "include PATH" and the
// variants includer/includem/includew/includeb/includea.
func isInclude(s string) (string, bool) {
	if !strings.HasPrefix(s, "include") || len(s) < 9 {
		return "", false
	}
	rest := ""
	switch {
	case s[7] == ' ' || s[7] == '\t':
		rest = s[8:]
	case strings.IndexByte("rmwba", s[7]) >= 0 && (s[8] == ' ' || s[8] == '\t'):
		rest = s[9:]
	default:
		return "", false
	}
	return strings.TrimSpace(rest), true
}

// include reads every file that pattern matches, relative to dir.
func (lx *lexer) include(pos Pos, dir, pattern string) {
	if pattern == "" {
		lx.d.errorf(pos, "include without a file name")
		return
	}
	p := pattern
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	matches, err := filepath.Glob(p)
	if err != nil {
		lx.d.errorf(pos, fmt.Sprintf("include %q: bad pattern", pattern))
		return
	}
	if len(matches) == 0 {
		if strings.ContainsAny(pattern, "*?[") {
			return // a glob matching nothing is fine, as in keepalived
		}
		lx.d.errorf(pos, fmt.Sprintf("include %q: no such file", pattern))
		return
	}
	for _, m := range matches {
		lx.readFile(pos, m)
	}
}

// split cuts s at every brace outside double quotes and tokenizes each part.
func (lx *lexer) split(pos Pos, s string) {
	for s != "" {
		i := braceIndex(s)
		if i < 0 {
			lx.emit(pos, s)
			return
		}
		if i > 0 {
			lx.emit(pos, s[:i])
		}
		lx.put(line{pos: pos, words: []string{s[i : i+1]}, raw: s[i : i+1]})
		s = strings.TrimLeft(s[i+1:], " \t")
	}
}

func braceIndex(s string) int {
	inQ := false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			inQ = !inQ
		case '{', '}':
			if !inQ {
				return i
			}
		}
	}
	return -1
}

func (lx *lexer) emit(pos Pos, s string) {
	s = strings.TrimRight(s, " \t")
	if s == "" {
		return
	}
	w := tokenize(s)
	if len(w) == 0 {
		return
	}
	lx.put(line{pos: pos, words: w, raw: s})
}

func (lx *lexer) put(l line) {
	if lx.sink != nil {
		lx.sink(l)
		return
	}
	lx.out = append(lx.out, l)
}

// tokenize splits on blanks; a word that starts with a double quote runs
// to the next double quote (keepalived's alloc_strvec).
func tokenize(s string) []string {
	w := make([]string, 0, 4)
	for {
		s = strings.TrimLeft(s, " \t\v\f\r")
		if s == "" {
			return w
		}
		if s[0] == '"' {
			k := strings.IndexByte(s[1:], '"')
			if k < 0 {
				w = append(w, s[1:])
				return w
			}
			w = append(w, s[1:1+k])
			s = s[k+2:]
			continue
		}
		k := strings.IndexAny(s, " \t\v\f\r\"")
		if k < 0 {
			return append(w, s)
		}
		if k == 0 { // a quote inside a word starts a new word
			k = 1
		}
		w = append(w, s[:k])
		s = s[k:]
	}
}

// decomment strips leading/trailing blanks and a `!` or `#` comment outside
// double quotes; `\!` and `\#` outside quotes stand for the character. A
// trailing backslash is removed and reported as a continuation.
func decomment(s string, d *diags, pos Pos) (string, bool) {
	s = strings.TrimLeft(s, " \t")
	if !strings.ContainsAny(s, "!#\"\\") {
		return strings.TrimRight(s, " \t"), false
	}
	var b []byte
	quote, cont := false, false
	i := 0
loop:
	for ; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			quote = !quote
		case '\\':
			if i+1 >= len(s) {
				cont = true
				break loop
			}
			if !quote && (s[i+1] == '#' || s[i+1] == '!') {
				b = append(b, s[i+1])
				i++
				continue
			}
			b = append(b, c, s[i+1])
			i++
			continue
		case '!', '#':
			if !quote {
				break loop
			}
		}
		b = append(b, c)
	}
	if quote {
		d.errorf(pos, "unterminated quote")
	}
	return strings.TrimRight(string(b), " \t"), cont
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isAlnum(c byte) bool { return isAlpha(c) || c >= '0' && c <= '9' }

// defaultConfigID is keepalived's default for -i: the host name up to its
// first dot.
func defaultConfigID() string {
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	short, _, _ := strings.Cut(h, ".")
	return short
}
