package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeEntra answers the workload-identity exchange for the assertion in
// file with token, and checks the request.
func fakeEntra(t *testing.T, file, token string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		want, _ := os.ReadFile(file)
		if r.URL.Path != "/tenant-1/oauth2/v2.0/token" || r.FormValue("client_assertion") != string(want) ||
			r.FormValue("scope") != "api://azegress/.default" || r.FormValue("client_id") != "client-1" {
			http.Error(w, `{"error":"invalid_request","error_description":"the test's Entra did not expect this request"}`, 400)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"token_type": "Bearer", "expires_in": 3599, "access_token": token})
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestProxyURL(t *testing.T) {
	file := filepath.Join(t.TempDir(), "azure-identity-token")
	if err := os.WriteFile(file, []byte("eyJ.sa.token"), 0o600); err != nil {
		t.Fatal(err)
	}
	entra := fakeEntra(t, file, "eyJ0eXAi.eyJhdWQi.c2ln-_")
	for k, v := range map[string]string{
		"AZURE_FEDERATED_TOKEN_FILE": file, "AZURE_CLIENT_ID": "client-1", "AZURE_TENANT_ID": "tenant-1",
		"AZURE_AUTHORITY_HOST": entra.URL + "/",
	} {
		t.Setenv(k, v)
	}
	for _, tt := range []struct {
		name string
		args []string
		code int
		out  string
		err  string
	}{
		{"http", []string{"-proxy", "http://10.0.0.4:3128"}, 0, "http://azegress:eyJ0eXAi.eyJhdWQi.c2ln-_@10.0.0.4:3128\n", ""},
		{"https, trailing slash", []string{"-proxy", "https://proxy.example:3129/"}, 0, "https://azegress:eyJ0eXAi.eyJhdWQi.c2ln-_@proxy.example:3129\n", ""},
		{"IPv6", []string{"-proxy", "http://[fd00::4]:3128"}, 0, "http://azegress:eyJ0eXAi.eyJhdWQi.c2ln-_@[fd00::4]:3128\n", ""},
		{"other audience", []string{"-resource", "api://other", "-proxy", "http://10.0.0.4:3128"}, 1, "", "workload identity (" + entra.URL + "/tenant-1/oauth2/v2.0/token): 400 invalid_request"},
		{"no proxy", nil, 2, "", "-proxy is required"},
		{"no port", []string{"-proxy", "http://10.0.0.4"}, 2, "", "name the host and the port"},
		{"credentials", []string{"-proxy", "http://u:p@10.0.0.4:3128"}, 2, "", "leave the credentials out"},
		{"socks", []string{"-proxy", "socks5://10.0.0.4:1080"}, 2, "", "want http://HOST:PORT"},
		{"argument", []string{"-proxy", "http://10.0.0.4:3128", "extra"}, 2, "", `unexpected argument "extra"`},
		{"Arc with a client ID", []string{"-client-id", "x", "-proxy", "http://10.0.0.4:3128"}, 1, "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "Arc with a client ID" {
				t.Setenv("AZURE_FEDERATED_TOKEN_FILE", "")
				t.Setenv("IDENTITY_ENDPOINT", "http://localhost:40342/metadata/identity/oauth2/token")
				t.Setenv("IMDS_ENDPOINT", "http://localhost:40342")
				tt.err = "only the system-assigned identity"
			}
			out, errs, code := runCLI(append([]string{"proxy-url"}, tt.args...)...)
			if code != tt.code || out != tt.out || !strings.Contains(errs, tt.err) {
				t.Fatalf("exit %d (want %d)\nstdout: %q (want %q)\nstderr: %s", code, tt.code, out, tt.out, errs)
			}
		})
	}
}

func TestAgentFlags(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		args []string
		err  string
	}{
		{[]string{"-upstream", "http://10.0.0.4:3128", "-listen", "0.0.0.0:3128"}, "loopback only"},
		{[]string{"-upstream", "http://10.0.0.4:3128", "-listen", ":3128"}, "loopback only"},
		{[]string{"-upstream", "http://10.0.0.4:3128", "-listen", "10.0.0.5:3128"}, "loopback only"},
		{[]string{"-listen", "127.0.0.1:0"}, "-upstream is required"},
		{[]string{"-upstream", "ftp://10.0.0.4:21"}, "want http://HOST:PORT"},
		{[]string{"-upstream", "http://10.0.0.4:3128", "-log-level", "loud"}, "-log-level"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, errs, code := runCLI(append([]string{"agent"}, tt.args...)...)
			if code != 2 || !strings.Contains(errs, tt.err) {
				t.Fatalf("exit %d (want 2)\nstderr: %s", code, errs)
			}
		})
	}
}
