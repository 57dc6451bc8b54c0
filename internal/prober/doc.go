// Package prober decides the health of real servers: the active checkers
// (TCP_CHECK, HTTP_GET, SSL_GET, with keepalived's semantics), the
// scheduler that runs them for tens of thousands of real servers, the
// raw-socket SYN prober and the failure detector.
//
// Only a full check decides what is true; fast signals decide when to check.
package prober
