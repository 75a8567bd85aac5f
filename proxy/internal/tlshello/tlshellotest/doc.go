// Package tlshellotest builds TLS records for the tests of tlshello and of
// the proxy: ClientHellos with chosen extensions, fragmented over records,
// and the first flights of real crypto/tls clients and servers. Only tests
// import it.
//
// It builds bytes without tlshello, so that it can check the parser rather
// than echo it, and imports nothing of the module.
package tlshellotest
