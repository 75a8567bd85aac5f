// Package nettest has the network helpers the tests of the proxy and of
// its relay share: a loopback listener, an echoing peer, and counts of the
// process's open fds. Only tests import it; it imports nothing of the
// module.
package nettest
