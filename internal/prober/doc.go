// Package prober decides the health of real servers: the active checkers
// (TCP_CHECK, HTTP_GET, SSL_GET, MISC_CHECK, DNS_CHECK, UDP_CHECK,
// PING_CHECK, SMTP_CHECK and FILE_CHECK, with keepalived 2.2.7's semantics
// and weights; BFD_CHECK is refused), the
// scheduler that runs them for tens of thousands of real servers, the
// raw-socket SYN prober and the failure detector.
//
// Only a full check decides what is true; fast signals decide when to check.
package prober
