package prober

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// bodyRegex is the regex test of one url: keepalived's regex,
// regex_no_match, regex_options, regex_min_offset and regex_max_offset.
//
// keepalived uses PCRE2; lvsprobe uses Go's RE2 (package regexp), which
// runs in time linear in the body but differs:
//   - No backreferences, lookahead or lookbehind, possessive quantifiers,
//     atomic groups or recursion: a regex using them is refused when the
//     checker is built, never half-honoured.
//   - \d, \w, \s and \b are ASCII-only, as PCRE2 without the ucp option;
//     `ucp` is therefore refused. Use \pN, \pL for Unicode classes.
//   - The options caseless, multiline, dotall and ungreedy map to the RE2
//     flags i, m, s and U. utf, never_utf, never_ucp, no_auto_capture,
//     dupnames, no_auto_possess, no_start_optimize, no_dotstar_anchor,
//     never_backslash_c, auto_callout and use_offset_limit change nothing
//     a match decides here and are accepted. extended, firstline,
//     dollar_endonly, allow_empty_class, alt_bsux, match_unset_backref,
//     alt_circumflex, alt_verbnames and ucp are refused.
//   - regex_min_offset: the search starts that many bytes into the body,
//     where ^ and \A match (PCRE2 given a start offset matches them only at
//     the true start).
//   - regex_max_offset: a match must start at or before that offset (as
//     PCRE2's offset limit).
//   - The whole body (bounded by the body cap) is searched at once, not
//     buffer by buffer.
type bodyRegex struct {
	re      *regexp.Regexp
	noMatch bool
	min     int
	max     int // 0: no limit
}

// regexFlags maps PCRE2 options onto RE2 flags; "" marks an option that
// makes no difference here.
var regexFlags = map[string]string{
	"caseless": "i", "multiline": "m", "dotall": "s", "ungreedy": "U",
	"utf": "", "never_utf": "", "never_ucp": "", "no_auto_capture": "", "dupnames": "",
	"no_auto_possess": "", "no_start_optimize": "", "no_dotstar_anchor": "",
	"never_backslash_c": "", "auto_callout": "", "use_offset_limit": "",
}

// newBodyRegex compiles the regex of u; it returns nil when u has none.
func newBodyRegex(u *config.URL) (*bodyRegex, error) {
	if u.Regex == "" {
		return nil, nil
	}
	var flags strings.Builder
	for _, o := range u.RegexOptions {
		f, ok := regexFlags[o]
		if !ok {
			return nil, fmt.Errorf("%s: regex_options %s has no RE2 equivalent: %w", u.Pos, o, ErrUnsupported)
		}
		flags.WriteString(f)
	}
	expr := u.Regex
	if flags.Len() > 0 {
		expr = "(?" + flags.String() + ")" + expr
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, fmt.Errorf("%s: regex %q (RE2 syntax): %w", u.Pos, u.Regex, err)
	}
	if u.RegexMinOffset < 0 || u.RegexMaxOffset < 0 || (u.RegexMaxOffset > 0 && u.RegexMaxOffset < u.RegexMinOffset) {
		return nil, fmt.Errorf("%s: regex offsets %d..%d: %w", u.Pos, u.RegexMinOffset, u.RegexMaxOffset, errConfig)
	}
	return &bodyRegex{re: re, noMatch: u.RegexNoMatch, min: u.RegexMinOffset, max: u.RegexMaxOffset}, nil
}

// matches reports whether body has a match within the offsets.
func (b *bodyRegex) matches(body []byte) bool {
	if b.min > len(body) {
		return false
	}
	loc := b.re.FindIndex(body[b.min:])
	if loc == nil {
		return false
	}
	return b.max == 0 || b.min+loc[0] <= b.max
}

// check returns nil when body passes the test (a match, or no match with
// regex_no_match).
func (b *bodyRegex) check(body []byte) error {
	m := b.matches(body)
	switch {
	case m && b.noMatch:
		return fmt.Errorf("regex %q matched (regex_no_match)", b.re)
	case !m && !b.noMatch:
		return fmt.Errorf("regex %q did not match", b.re)
	}
	return nil
}
