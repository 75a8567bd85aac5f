// Package tokensource gets the Entra access token a workload shows the
// proxy: a token of this machine's managed identity for the proxy's own
// audience (api://azegress), from whichever token service the environment
// has. It is the client side of package identity and serves the token
// helpers (`azegress proxy-url`, `azegress agent`).
//
// It imports the standard library only, never the proxy or the policy.
//
// # Sources, in the order FromEnvironment tries them
//
//   - AKS workload identity, when AZURE_FEDERATED_TOKEN_FILE is set: the
//     client-credentials grant at {AZURE_AUTHORITY_HOST}{AZURE_TENANT_ID}/
//     oauth2/v2.0/token with client_id AZURE_CLIENT_ID, the file's content
//     as client_assertion (read anew each time: kubelet rotates it) and
//     scope "<resource>/.default". The authority must be https (http only
//     to a loopback host, a test's).
//   - Azure Arc's HIMDS, when IDENTITY_ENDPOINT and IMDS_ENDPOINT are set
//     or Arc's agent is installed (/opt/azcmagent/bin/himds): a GET with
//     `Metadata: true` is answered 401 with `WWW-Authenticate: Basic
//     realm=<file>`; the file is read and the GET repeated with
//     `Authorization: Basic <content>`. As Azure's SDKs do, the file must be
//     a regular *.key file directly in /var/opt/azcmagent/tokens and at most
//     4 KiB: a process that answers on the endpoint in HIMDS's stead must
//     not be able to make us read, and send it, any other file. The
//     endpoint must be on this machine. Arc has only the system-assigned
//     identity, so a client ID is refused.
//   - IMDS, otherwise: GET http://169.254.169.254/metadata/identity/oauth2/token
//     with `Metadata: true`, api-version 2018-02-01 and, for a user-assigned
//     identity, client_id.
//
// App Service, Functions, Service Fabric and Cloud Shell (IDENTITY_HEADER,
// MSI_ENDPOINT) are refused with an error, not mistaken for a VM.
//
// Token services are reached directly, never through a proxy: the
// transports have Proxy nil, whatever HTTPS_PROXY says (IMDS and HIMDS are
// local and refuse proxied requests; a proxy variable may even point at the
// agent that is asking). Workload identity may be sent through a proxy on
// purpose (Config.EntraProxy), when the pod can reach Entra only through
// the egress proxy. Redirects are not followed, bodies are read up to
// 256 KiB, and tokens appear in no error.
//
// # Errors
//
// A failed request is an *Error naming the source and the endpoint, what
// happened (status, OAuth error code, the service's description) and, where
// the cause is known, what to check. Temporary failures (404 or 410 from
// IMDS while the VM starts, 408, 429, 5xx, no answer from HIMDS or Entra)
// are marked so; Fetch retries them. No answer from IMDS (not an Azure VM),
// an untrusted certificate and EntraProxy's refusal of the CONNECT (403,
// 407: a policy decision, named with its X-Azegress-Reason) are not
// temporary.
//
// # Cache
//
// Cache keeps a token fresh for a long-running process: it asks again at
// 80 % of the token's remaining lifetime; after a failure it retries with
// backoff (1 s doubling to 1 min, never later than expiry) and keeps
// serving the last token until it expires.
package tokensource
