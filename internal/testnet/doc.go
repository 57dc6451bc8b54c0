// Package testnet builds the network topology the prober's tests run in:
// the test process itself is the director, inside a network namespace of
// its own (see [Main]), and each real server is a further namespace joined
// to it by a veth pair, with addresses from 198.18.0.0/15 and no route
// anywhere else. Nothing a test sends can leave the namespaces it made.
//
// Everything is torn down through testing.TB.Cleanup; namespaces are named
// with a per-process prefix, and [Main] removes any the test process left
// behind, so parallel runs never clash and a crashed run leaves nothing.
package testnet
