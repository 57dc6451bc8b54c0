package notify

import (
	"os"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// ResolveScript checks a script other than a notify or quorum script
// (MISC_CHECK's misc_path) by the same rules, keepalived's
// check_script_secure: its user (the script's own, else global_defs
// script_user, else keepalived_script when it exists, else lvsprobe's own
// user), the search of a bare name in path ("" means /bin:/usr/bin),
// executability by that user and, with enable_script_security, the
// ownership and permissions of the program and every directory above it.
// warn receives findings that do not refuse the script.
func ResolveScript(s *config.Script, g config.Global, path string, warn func(msg string)) (*Command, error) {
	self := Identity{UID: uint32(os.Geteuid()), GID: uint32(os.Getegid()), Name: "self"}
	p := policy{security: g.EnableScriptSecurity, path: path, self: self, setid: canSetID()}
	p.deflt, p.defltErr = defaultIdentity(g.ScriptUser, g.ScriptGroup, p.security, self)
	c, err := resolve(s.Args, s.User, s.Group, p, warn)
	if err != nil {
		return nil, err
	}
	c.Source = s.Pos.String()
	return c, nil
}
