package notify

import (
	"errors"
	"fmt"
	"os/user"
	"strconv"

	"golang.org/x/sys/unix"
)

// DefaultScriptUser is the user keepalived runs scripts as when neither
// the script nor global_defs names one, if it exists.
const DefaultScriptUser = "keepalived_script"

// Identity is the user and group a script runs as.
type Identity struct {
	UID, GID uint32
	Name     string // for logs: "user" or "user:group"
}

// lookupIdentity resolves a user name and an optional group name as
// keepalived's set_uid_gid does: the user's primary group unless a group
// is named.
func lookupIdentity(userName, groupName string) (Identity, error) {
	u, err := user.Lookup(userName)
	if err != nil {
		return Identity{}, fmt.Errorf("script user %q: %w", userName, err)
	}
	id := Identity{Name: userName}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return Identity{}, fmt.Errorf("script user %q: %w", userName, err)
	}
	id.UID, id.GID = uint32(uid), uint32(gid)
	if groupName != "" {
		g, err := user.LookupGroup(groupName)
		if err != nil {
			return Identity{}, fmt.Errorf("script group %q: %w", groupName, err)
		}
		gid, err := strconv.ParseUint(g.Gid, 10, 32)
		if err != nil {
			return Identity{}, fmt.Errorf("script group %q: %w", groupName, err)
		}
		id.GID = uint32(gid)
		id.Name += ":" + groupName
	}
	return id, nil
}

// defaultIdentity returns the identity of scripts that name no user:
// global script_user, else keepalived_script when it exists, else self.
// With script security on, a missing keepalived_script is an error (as
// keepalived's get_default_script_user reports "Unable to set default
// user").
func defaultIdentity(scriptUser, scriptGroup string, security bool, self Identity) (Identity, error) {
	if scriptUser != "" {
		return lookupIdentity(scriptUser, scriptGroup)
	}
	id, err := lookupIdentity(DefaultScriptUser, "")
	if err == nil {
		return id, nil
	}
	var unknown user.UnknownUserError
	if !errors.As(err, &unknown) {
		return Identity{}, err
	}
	if security {
		return Identity{}, fmt.Errorf("%w: enable_script_security is set, no script_user is configured and user %s does not exist", ErrNoUser, DefaultScriptUser)
	}
	return self, nil
}

// canSetID reports whether this process holds CAP_SETUID and CAP_SETGID
// in its effective set (root normally does; a unit with User= does not).
func canSetID() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	const need = 1<<unix.CAP_SETUID | 1<<unix.CAP_SETGID
	return data[0].Effective&need == need
}
