// Package ipvs keeps the kernel's IPVS table in step with the health of
// real servers: a reconciler that computes the desired table (config ×
// health, with keepalived's quorum, hysteresis, sorry_server, alpha, omega
// and inhibit_on_failure rules) and applies the difference through a
// Backend. Backends: the kernel (github.com/moby/ipvs over generic
// netlink, plus requests of its own for destinations) and a dry
// run that keeps an in-memory table and logs the ipvsadm command for
// each change. The reconciler owns only the services in its config and
// never touches any other. A health or weight change costs a pass over
// the services of its virtual server only, compared with the table the
// last pass left; a read of the kernel's table (every ResyncInterval,
// after a failed write) and a reload compute the whole table.
//
// # Semantics, and where they differ from keepalived 2.2.7
//
// The desired table follows keepalived's check/ipwrapper.c and
// ipvswrapper.c (see buildVS): alive real servers are in with their
// weight; dead ones are out, or in with weight 0 under
// inhibit_on_failure; without alpha a real server starts alive, with an
// alpha checker it starts dead; quorum is the sum of the weights of the
// alive real servers, lost when that sum is 0 or below
// quorum-hysteresis and regained at quorum+hysteresis; without quorum a
// sorry_server (weight 1, its own lvs_method) replaces every real server
// (inhibited ones stay at weight 0), and sorry_server_inhibit keeps it in
// at weight 0 while quorum holds. For DR and TUN the destination port is
// the service's port (0 on a fwmark service), as keepalived programs it.
//
// Deliberate differences, chosen for an operator who restarts and reloads
// lvsprobe on a live director:
//
//   - Restart adoption: a real server whose health is not yet known and
//     that has an alpha checker is taken as alive when the kernel already
//     holds it with a weight above 0 (keepalived would pull it out until
//     its check passes). Without alpha keepalived's rule already keeps it.
//     So a restart writes nothing until a check says something changed.
//   - An owned service is owned whole: a destination in it that the
//     configuration does not produce is deleted (drift repair).
//   - lvs_flush deletes, at start, only the configured services found in
//     the table (keepalived flushes every service, including those of
//     other tools); run `ipvsadm -C` first to wipe everything.
//   - lvs_flush_on_stop unset leaves the table as it is on stop, like
//     keepalived --dont-release-ipvs, so the next start adopts it. "RS"
//     deletes each owned destination then each owned service (keepalived's
//     default on stop); "VS" and any other value delete the owned services.
//     Services lvsprobe does not own are never touched.
//   - omega only changes which notify scripts keepalived runs at shutdown;
//     ha_suspend only suspends checks while the VIP is not local. Neither
//     changes the table, so the reconciler ignores both (the checker side
//     owns them).
//   - Two real servers that map to the same destination (DR/TUN on one
//     address with different ports) are one destination: the first wins
//     and a warning is logged (keepalived's second add meets EEXIST).
//
// # Faults
//
// A write the kernel refuses (a scheduler module that cannot load, a bad
// parameter) is logged, counted (Stats.Errors) and retried with an
// exponential backoff per target (RetryBase doubling to RetryMax) while
// the rest of the table converges. Races with a human running ipvsadm
// are absorbed as keepalived's ipvs_talk absorbs them: an add meeting
// EEXIST becomes an edit, an edit meeting ENOENT an add, a delete meeting
// ENOENT succeeds (Stats.Races).
//
// # Kernel backend limits (github.com/moby/ipvs v1.1.0)
//
// No tunnel-type attributes, so Kernel writes and lists destinations
// itself over its own generic-netlink socket, with
// IPVS_DEST_ATTR_TUN_TYPE, _TUN_PORT and _TUN_FLAGS (TUN with ipip, gue
// and a port, or gre, each nocsum, csum or remcsum); a destination
// without tunnel options is written as ipip, port 0, nocsum, the
// kernel's defaults, so an edit from gue or gre back to ipip resets
// them. The kernel refuses gue without a port (EINVAL). A destination
// is sent with its own address's family (a TUN destination of the other
// family than its service's is untested). Services and timeouts still
// go through moby/ipvs.
// The persistence engine is not read back (see Kernel). NewKernel checks
// the generic-netlink family "IPVS" itself and fails with ErrNoIPVS,
// where moby/ipvs would only log.
package ipvs
