package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// nodeTunnelJS opens one CONNECT tunnel per round through the explicit
// proxy, speaks TLS inside it and sends a request with "Connection: close",
// as Node's https agent does through a proxy. The origin answers and closes;
// when its end arrives Node ends its side too (close_notify, then FIN), and
// those bytes meet the origin's closed socket. It prints one JSON line per
// round: the response and every error the TLS or the TCP socket reported.
const nodeTunnelJS = `
const http = require('http'), tls = require('tls'), fs = require('fs');
const [proxyHost, proxyPort, host, caFile, rounds] = process.argv.slice(2);
const ca = fs.readFileSync(caFile);
function round() {
  return new Promise((resolve) => {
    const out = {response: '', errors: []};
    const note = (where) => (e) => out.errors.push(where + ': ' + (e.code || e.message));
    const req = http.request({host: proxyHost, port: +proxyPort, method: 'CONNECT',
      path: host + ':443', headers: {host: host + ':443'}});
    req.on('error', (e) => { note('connect')(e); resolve(out); });
    req.on('connect', (res, socket) => {
      if (res.statusCode !== 200) {
        out.errors.push('connect: status ' + res.statusCode);
        socket.destroy();
        resolve(out);
        return;
      }
      socket.on('error', note('tcp'));
      socket.on('close', () => resolve(out)); // the last event of a round
      const t = tls.connect({socket, servername: host, ca}); // allowHalfOpen false: ends when the origin does
      t.on('error', note('tls'));
      t.on('secureConnect', () => t.write('GET / HTTP/1.1\r\nHost: ' + host + '\r\nConnection: close\r\n\r\n'));
      t.on('data', (d) => { out.response += d; });
    });
    req.end();
  });
}
(async () => {
  for (let i = 0; i < +rounds; i++) console.log(JSON.stringify(await round()));
})();
`

// nhClosingName is the origin of TestTunnelCloseNode, on nhOtherIP in its
// own topology; *.allowed.example is allowed on 443.
const nhClosingName = "closing.allowed.example"

// TestTunnelCloseNode reproduces issue 11 finding 5 with a real Node.js
// client: a tunnel whose origin closes first, and whose client then ends
// its TLS session towards the closed origin, which resets, must end as a
// normal close (close_reason eof), with the whole response delivered and no
// error on the client's side.
func TestTunnelCloseNode(t *testing.T) {
	t.Parallel()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("needs Node.js (node on PATH) to reproduce a Node client's tunnel ends")
	}
	hosts := "127.0.0.1 localhost\n" + nhOtherIP + " " + nhClosingName + "\n"
	for name, ip := range nhNames {
		hosts += ip + " " + name + "\n"
	}
	tp := nhSetupWith(t, nhOptions{Listen: nhProxyLANIP + ":3128", ProxyEtc: map[string]string{"hosts": hosts}})
	caFile := startClosingOrigin(t, tp, nhOtherIP+":443")
	script := filepath.Join(tp.dir, "tunnel.js")
	if err := os.WriteFile(script, []byte(nodeTunnelJS), 0o644); err != nil {
		t.Fatal(err)
	}

	const rounds = 10
	mark := tp.log.mark()
	ctx, cancel := context.WithTimeout(context.Background(), 4*nhLimit)
	defer cancel()
	cmd := tp.workload.Command(ctx, node, script, nhProxyLANIP, "3128", nhClosingName, caFile, strconv.Itoa(rounds))
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != rounds {
		t.Fatalf("node printed %d results, want %d:\n%s", len(lines), rounds, out)
	}
	for i, line := range lines {
		var r struct {
			Response string
			Errors   []string
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("round %d: %v: %s", i, err, line)
		}
		if r.Response != closingResponse {
			t.Errorf("round %d: response %q, want %q", i, r.Response, closingResponse)
		}
		if len(r.Errors) > 0 {
			t.Errorf("round %d: the client saw %v, want a clean end", i, r.Errors)
		}
	}

	// Each tunnel logs "tunnel closed" once; a normal end is "eof".
	recs := tp.log.waitN(t, mark, rounds, "tunnel closed for "+nhClosingName, func(r nhRecord) bool {
		return r.str("msg") == "tunnel closed" && r.str("host") == nhClosingName
	})
	for _, r := range recs {
		if got := r.str("close_reason"); got != "eof" {
			t.Errorf("tunnel closed with close_reason %q (error %q), want \"eof\"", got, r.str("error"))
		}
	}
}

// closingResponse is what startClosingOrigin answers.
var closingResponse = func() string {
	body := "served-by " + nhClosingName + "\n"
	return "HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\nConnection: close\r\n\r\n" + body
}()

// startClosingOrigin serves HTTPS for nhClosingName on addr in tp's
// internet namespace, with a CA of its own, whose file it returns. It
// answers each connection's request the way an HTTP server answers
// "Connection: close": it writes the response, ends TLS (close_notify) and
// closes the socket at once. close_notify and the FIN leave in one segment
// (TCP_CORK), so the client's answer to close_notify always reaches a
// closed socket, whose kernel resets. (Go's http.Server sends close_notify
// before it closes: a client that answers fast enough finds its socket
// still open with bytes unread, and its kernel then resets with no FIN
// first, which a tunnel cannot tell from an abort.)
func startClosingOrigin(t *testing.T, tp *nhTopo, addr string) (caFile string) {
	t.Helper()
	ca, caKey := nhCA(t)
	caFile = filepath.Join(tp.dir, "closing-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := &tls.Config{Certificates: []tls.Certificate{nhLeaf(t, ca, caKey, nhClosingName)}}
	ln, err := tp.inet.Listen("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { answerAndClose(t, c.(*net.TCPConn), conf) })
		}
	})
	return caFile
}

// answerAndClose reads one request on c, answers closingResponse, and
// closes; see startClosingOrigin.
func answerAndClose(t *testing.T, c *net.TCPConn, conf *tls.Config) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(nhLimit))
	tc := tls.Server(c, conf)
	r := bufio.NewReader(tc)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Errorf("origin: reading the request: %v", err)
			return
		}
		if line == "\r\n" {
			break
		}
	}
	if _, err := io.WriteString(tc, closingResponse); err != nil {
		t.Errorf("origin: %v", err)
		return
	}
	rc, err := c.SyscallConn()
	if err == nil {
		rc.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_CORK, 1) })
	}
	if err != nil {
		t.Errorf("origin: TCP_CORK: %v", err)
		return
	}
	tc.CloseWrite() // close_notify, held by the cork
	c.CloseWrite()  // FIN, which sends both
}

// waitN waits until n records after mark match, and returns them; it fails
// the test if they do not all come within nhLimit.
func (l *nhLog) waitN(t *testing.T, mark, n int, what string, match func(nhRecord) bool) []nhRecord {
	t.Helper()
	deadline := time.NewTimer(nhLimit)
	defer deadline.Stop()
	for {
		ch := l.changedCh()
		var got []nhRecord
		l.mu.Lock()
		for _, r := range l.records[mark:] {
			if match(r) {
				got = append(got, r)
			}
		}
		l.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("%d of %d log records: %s\nlog since the step began:\n%s", len(got), n, what, l.textSince(mark))
		}
	}
}
