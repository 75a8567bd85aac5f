// Package tlshello reads a TLS ClientHello without terminating TLS, and
// tells a server's HelloRetryRequest from its other first answers.
//
// The proxy's transparent TLS listener and its CONNECT domain-fronting
// check need a ClientHello's server_name (SNI), whether it carries an
// Encrypted Client Hello, its ALPN list, and whether it offers TLS 1.3 (and
// so may meet a HelloRetryRequest). The bytes come straight off a client
// socket, so the parser is written for hostile input: bounded,
// allocation-free on the common path, and a pure function of the bytes seen
// so far. A reader calls Parse on everything it has read after each read;
// once the answer is not ErrIncomplete, more bytes never change it
// (FuzzParseClientHello checks this).
//
// The ClientHello may be split over several TCP segments (any reader
// handles that) and over several TLS records (RFC 8446 §5.1 allows a
// handshake message to be fragmented across records); the parser reassembles
// the message. References: RFC 8446 §4.1.2 (ClientHello), §4.2 (extensions,
// no duplicates), §4.2.1 (supported_versions), §4.1.4 (HelloRetryRequest),
// RFC 6066 §3 (server_name), RFC 7301 §3.1 (ALPN), and draft-ietf-tls-esni
// (encrypted_client_hello, 0xfe0d).
//
// What looks like TLS must be a ClientHello and nothing else: servers differ
// in what they skip before one (Go's and OpenSSL's serve a ClientHello after
// a warning alert, and Go's takes any record version below 0x1000), and
// whatever a server may read as a ClientHello must be what the proxy
// checked. So input whose first byte is a TLS record type (change_cipher_spec
// to heartbeat, 20 to 24) is a ClientHello in records of versions 3.0 to 3.4,
// alone in its last record, or it is refused; anything else is not TLS.
//
// It imports nothing of the module, the proxy and the policy included: it
// reads names, and the proxy decides on them (fronting.go, transparent.go).
// TestDeps enforces that.
package tlshello
