package netaudit

import (
	"bytes"
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	azpolicy "github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// Cloud is where a cloud's Entra ID authority and Resource Manager are.
type Cloud struct {
	Name   string
	Config cloud.Configuration
	// DisableInstanceDiscovery skips Entra ID's instance metadata request
	// to login.microsoft.com: for private and disconnected clouds (Azure
	// Stack Hub), whose authority Entra ID does not know.
	DisableInstanceDiscovery bool
}

// CloudByName returns one of the clouds the Azure SDK knows, by the name
// a policy's cloud attribute uses.
func CloudByName(name string) (Cloud, error) {
	switch name {
	case "", "AzureCloud":
		return Cloud{Name: "AzureCloud", Config: cloud.AzurePublic}, nil
	case "AzureUSGovernment":
		return Cloud{Name: name, Config: cloud.AzureGovernment}, nil
	case "AzureChinaCloud":
		return Cloud{Name: name, Config: cloud.AzureChina}, nil
	}
	return Cloud{}, fmt.Errorf("unknown cloud %q: use AzureCloud, AzureUSGovernment or AzureChinaCloud, or describe it in a file (-cloud-config)", name)
}

// cloudFile is the -cloud-config file: the fields of the SDK's
// cloud.Configuration for Resource Manager.
type cloudFile struct {
	Name                         string `json:"name"`
	ActiveDirectoryAuthorityHost string `json:"activeDirectoryAuthorityHost"`
	ResourceManager              struct {
		Endpoint string `json:"endpoint"`
		Audience string `json:"audience"`
	} `json:"resourceManager"`
	DisableInstanceDiscovery bool `json:"disableInstanceDiscovery"`
}

// LoadCloud reads a cloud from a JSON file, for sovereign, private and
// Azure Stack Hub clouds the SDK does not list:
//
//	{
//	  "name": "AzureStackHub",
//	  "activeDirectoryAuthorityHost": "https://login.microsoftonline.com/",
//	  "resourceManager": {
//	    "endpoint": "https://management.local.azurestack.external",
//	    "audience": "https://management.contoso.onmicrosoft.com/00000000-0000-0000-0000-000000000000"
//	  },
//	  "disableInstanceDiscovery": false
//	}
//
// Unknown fields are errors; both URLs must be https.
func LoadCloud(path string) (Cloud, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Cloud{}, err
	}
	var f cloudFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return Cloud{}, fmt.Errorf("%s: %w", path, err)
	}
	var errs []error
	for _, u := range []struct{ field, value string }{
		{"activeDirectoryAuthorityHost", f.ActiveDirectoryAuthorityHost},
		{"resourceManager.endpoint", f.ResourceManager.Endpoint},
	} {
		if p, err := url.Parse(u.value); err != nil || p.Scheme != "https" || p.Host == "" {
			errs = append(errs, fmt.Errorf("%s: %s is %q: write an https URL", path, u.field, u.value))
		}
	}
	if f.ResourceManager.Audience == "" {
		errs = append(errs, fmt.Errorf("%s: resourceManager.audience is empty: write the audience tokens for Resource Manager are issued for", path))
	}
	if err := errors.Join(errs...); err != nil {
		return Cloud{}, err
	}
	return Cloud{
		Name: cmp.Or(f.Name, path),
		Config: cloud.Configuration{
			ActiveDirectoryAuthorityHost: f.ActiveDirectoryAuthorityHost,
			Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
				cloud.ResourceManager: {Endpoint: strings.TrimRight(f.ResourceManager.Endpoint, "/"), Audience: f.ResourceManager.Audience},
			},
		},
		DisableInstanceDiscovery: f.DisableInstanceDiscovery,
	}, nil
}

// ClientOptions are the options of every ARM client and of the
// credential: the cloud, and with caFile (PEM) an HTTP client that also
// trusts those CAs (an Azure Stack Hub's, or a TLS-inspecting proxy's).
// Provider registration stays off: the audit only reads.
func ClientOptions(c Cloud, caFile string) (*arm.ClientOptions, error) {
	opts := &arm.ClientOptions{
		ClientOptions:         azpolicy.ClientOptions{Cloud: c.Config},
		DisableRPRegistration: true,
	}
	if caFile == "" {
		return opts, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate in it", caFile)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	opts.Transport = &http.Client{Transport: tr}
	return opts, nil
}

// Credential is the Azure SDK's default credential chain (environment
// service principal or federated token, workload identity, managed
// identity, then the Azure CLI and other developer tools; the
// AZURE_TOKEN_CREDENTIALS variable narrows it), with the same options as
// the ARM clients, so a custom cloud and CA apply to Entra ID too.
func Credential(c Cloud, opts *arm.ClientOptions) (azcore.TokenCredential, error) {
	return azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{
		ClientOptions:            opts.ClientOptions,
		DisableInstanceDiscovery: c.DisableInstanceDiscovery,
	})
}
