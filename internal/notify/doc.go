// Package notify runs the notify_up, notify_down, quorum_up and
// quorum_down scripts of a keepalived.conf the way keepalived 2.2.7's
// checker does, with three deliberate differences that make them safe on a
// director running thousands of checks:
//
//   - a script never runs through a shell: the command line is split into
//     argv when the configuration is parsed (keepalived's quoting rules, see
//     internal/config) and the program is executed directly. A script
//     without a #! line (ENOEXEC) is handed to /bin/sh as a file, the way
//     execvp does, never as a command string;
//   - every run has a timeout (Options.Timeout): the script's process group
//     gets SIGTERM, then SIGKILL. keepalived never reaps a hanging notify
//     script while it runs;
//   - runs go through a bounded queue, so a slow or hanging script never
//     delays a check; when the queue is full the notification is dropped
//     and counted.
//
// Who runs a script, and whether it may run at all, follows keepalived's
// lib/notify.c: the user (and group) written after the command, else
// global_defs script_user, else the user keepalived_script when it exists,
// else the daemon's own user (and with enable_script_security, a missing
// keepalived_script refuses every script without a user). A script run as
// root (user or group 0, or set-user/group-ID root) must not be writable,
// nor sit in a directory writable, by anyone but root; with
// enable_script_security such a script is refused, without it a warning is
// logged and it runs. Scripts are checked when a configuration is loaded
// ([Runner.Update]); a refused script is logged and never run.
//
// Under a systemd unit with User= and AmbientCapabilities= (see
// docs/systemd.md), scripts run as the daemon's user with no capability:
// the ambient and inheritable sets are cleared for them. A script that
// would have to run as another user is refused at load unless the daemon
// holds CAP_SETUID and CAP_SETGID.
package notify
