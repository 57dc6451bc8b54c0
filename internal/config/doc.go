// Package config reads the LVS part of a keepalived.conf (virtual_server,
// virtual_server_group, real_server and the checker blocks, plus the parts
// of global_defs a checker uses) as keepalived 2.2.7 reads it, and returns
// an immutable, fully resolved topology. Every problem is reported as
// "FILE:LINE: message". VRRP blocks are skipped: they stay with keepalived.
package config
