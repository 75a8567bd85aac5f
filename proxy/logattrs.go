package proxy

// Log attribute keys. They are part of the log format operators parse, so
// they are stable: add keys, never rename them.
const (
	keyKind        = "kind"         // connect | http | transparent_tls | transparent_http
	keyClient      = "client"       // client ip:port
	keyClientBlock = "client_block" // name of the matching client block
	keyHost        = "host"         // destination name or IP, normalized
	keyPort        = "port"         // destination port
	keyDecision    = "decision"     // allow | deny | would_deny
	keyReason      = "reason"       // machine-readable reason, see reason constants
	keyDetail      = "detail"       // human-readable explanation
	keyFix         = "fix"          // what would allow it or what to change, often an HCL snippet
	keyRule        = "rule"         // allow rule that matched
	keyPolicy      = "policy"       // policy file
	keyMode        = "mode"         // enforce | learn
	keyDstIP       = "dst_ip"       // address actually dialed
	keyStatus      = "status"       // HTTP status sent to the client
	keyBytesUp     = "bytes_up"     // client to destination
	keyBytesDown   = "bytes_down"   // destination to client
	keyDurationMS  = "duration_ms"  // lifetime of a tunnel or request
	keyCloseReason = "close_reason" // why a tunnel ended
	keyError       = "error"
	keyMethod      = "method"
	keyLabel       = "label"   // Azure catalog label of the destination
	keyExpires     = "expires" // when a rule stops matching (RFC 3339)
)

// keyPolicySHA is the SHA-256 of the compiled policy (policy.Policy.SHA256)
// on every record that names the policy, so that a decision ties to the
// exact file reviewed.
const keyPolicySHA = "policy_sha256"

// Log attribute keys of identity-keyed selection, on the records of
// requests judged under an entra block. The token itself is never logged.
const (
	keyIdentitySource = "identity_source" // token (credentials sent) | cidr (none: selected by address)
	keyAuthResult     = "auth_result"     // ok | refused | missing
	keyAuthReason     = "auth_reason"     // why refused: an identity reason, identity_unknown or identity_source
	keyOID            = "oid"             // the token's object ID: the managed identity
	keyAppID          = "appid"           // the token's client ID (appid or azp)
	keyTID            = "tid"             // the token's tenant
	keyTokenExp       = "token_exp"       // the token's expiry
	keyTokenFP        = "token_fp"        // first 8 hex digits of the token's SHA-256
)

// Log attribute keys of transparent mode.
const (
	keyOrigDst  = "orig_dst" // the ip:port the client connected to
	keyResolved = "resolved" // the addresses the name resolved to, comma-separated
)

// Log attribute keys of the TLS listener.
const (
	keyTLSCert = "tls_cert" // the certificate file
	keyTLSKey  = "tls_key"  // the private key file
)
