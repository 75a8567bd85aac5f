// Package agent is the loopback forwarder behind `azegress agent`: an
// explicit proxy for local clients that cannot send, or refresh, a proxy
// credential themselves (.NET and Java send one only after a 407;
// long-running services would keep a token in their environment past its
// expiry). It takes CONNECT and plain-HTTP requests without credentials
// and sends each to the upstream egress proxy with a fresh
// `Proxy-Authorization: Basic base64(azegress:<token>)`.
//
//   - CONNECT: the agent dials the upstream (http://, or https:// with a
//     verified certificate), sends `CONNECT host:port` with the header, and
//     relays the upstream's answer: on 200 the tunnel's bytes both ways, on
//     anything else its status, body and X-Azegress-Reason (a 403 or 407
//     from the policy), then closes.
//   - Plain HTTP in absolute form (http://host/path): forwarded to the
//     upstream with the header set, any client Proxy-Authorization and
//     other hop-by-hop headers removed, and the answer relayed.
//     https:// in absolute form is refused: use CONNECT.
//   - Destinations on this machine are refused with 403 and never sent
//     upstream: IMDS, WireServer and Arc's HIMDS and proxy (in every
//     spelling policy/catalog knows), and loopback. Their clients must
//     reach them directly: the 403 says to list them in NO_PROXY.
//   - Without a valid token (the token source failed and the last token
//     expired) requests are answered 503 with the reason, not sent
//     upstream without credentials.
//
// The agent grants nothing new to the machine's users: any local process
// can already ask the token service. That is why it must listen on
// loopback only (the command refuses other addresses): elsewhere it would
// lend this machine's identity to whoever can reach it. On Azure Arc,
// where only root and the himds group can read HIMDS's key files, the
// agent does lend the identity to every local user; see the README.
//
// It logs one record per request or tunnel (client, host, port, status,
// token fingerprint), never a path, query, header or token.
package agent
