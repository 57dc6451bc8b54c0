// Package ipvs keeps the kernel's IPVS table in step with the health of
// real servers: a reconciler that computes the desired table (config ×
// health, with keepalived's quorum, hysteresis, sorry_server, alpha, omega
// and inhibit_on_failure rules) and applies the difference through a
// Backend. Backends: the kernel (github.com/moby/ipvs over generic
// netlink) and a dry run that keeps an in-memory table and logs the
// ipvsadm command for each change. The reconciler owns only the services
// in its config and never touches any other.
package ipvs
