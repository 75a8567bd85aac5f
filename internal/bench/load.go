//go:build linux

package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// open returns a connection to the origin on port through t (for a proxy:
// CONNECT host:port, answered 200), and a reader to read it through.
func (t *target) open(host string, port int, timeout time.Duration) (net.Conn, *bufio.Reader, error) {
	d := net.Dialer{Timeout: timeout}
	if t.direct() {
		c, err := d.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			return nil, nil, err
		}
		return c, bufio.NewReader(c), nil
	}
	c, err := d.Dial("tcp", t.addr)
	if err != nil {
		return nil, nil, err
	}
	_ = c.SetDeadline(time.Now().Add(timeout))
	hp := net.JoinHostPort(host, strconv.Itoa(port))
	if _, err := io.WriteString(c, "CONNECT "+hp+" HTTP/1.1\r\nHost: "+hp+"\r\n"+t.auth+"\r\n"); err != nil {
		c.Close()
		return nil, nil, err
	}
	br := bufio.NewReader(c)
	status, _, err := readHead(br)
	if err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("CONNECT %s: %w", hp, err)
	}
	if status != 200 {
		c.Close()
		return nil, nil, fmt.Errorf("CONNECT %s: status %d", hp, status)
	}
	_ = c.SetDeadline(time.Time{})
	return c, br, nil
}

// respHead is what the load generator needs of a response head.
type respHead struct {
	contentLength int64 // -1 if absent
	keepAlive     bool
	chunked       bool
}

// readHead reads a response head: status line and header fields.
func readHead(br *bufio.Reader) (int, respHead, error) {
	h := respHead{contentLength: -1}
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, h, err
	}
	// "HTTP/1.1 200 ..."
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, h, fmt.Errorf("malformed status line %q", line)
	}
	h.keepAlive = line[7] == '1'
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, h, fmt.Errorf("malformed status line %q", line)
	}
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return 0, h, err
		}
		if len(bytes.TrimSpace(line)) == 0 {
			return status, h, nil
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			h.contentLength, _ = strconv.ParseInt(string(value), 10, 64)
		case bytes.EqualFold(name, []byte("Connection")), bytes.EqualFold(name, []byte("Proxy-Connection")):
			if bytes.EqualFold(value, []byte("close")) {
				h.keepAlive = false
			} else if bytes.EqualFold(value, []byte("keep-alive")) {
				h.keepAlive = true
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			h.chunked = true
		}
	}
}

// setupResult is tunnel setup with concurrent clients: each setup is a TCP
// connect, CONNECT and its 200 (not for direct), and a one-byte echo through
// to the origin, then close.
type setupResult struct {
	Rate     float64 // setups per second
	P50, P99 time.Duration
	N        int
	Errors   int
	FirstErr string
}

func measureSetup(t *target, workers int, dur time.Duration) setupResult {
	var (
		mu       sync.Mutex
		lats     []time.Duration
		errs     atomic.Int64
		firstErr atomic.Value
	)
	start := time.Now()
	deadline := start.Add(dur)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			local := make([]time.Duration, 0, 4096)
			b := []byte{'x'}
			for i := w; time.Now().Before(deadline); i++ {
				host := originHost
				if i%2 == 1 {
					host = wildHost // the wildcard rule
				}
				t0 := time.Now()
				if err := setupOnce(t, host, b); err != nil {
					firstErr.CompareAndSwap(nil, err.Error())
					if errs.Add(1) > 1000 {
						return
					}
					continue
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			lats = append(lats, local...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	r := setupResult{N: len(lats), Errors: int(errs.Load())}
	if s, ok := firstErr.Load().(string); ok {
		r.FirstErr = s
	}
	r.Rate = float64(len(lats)) / elapsed.Seconds()
	r.P50, r.P99 = percentile(lats, 50), percentile(lats, 99)
	return r
}

// setupOnce is one tunnel setup: connect, CONNECT host and its 200, a
// one-byte echo through the tunnel, close.
func setupOnce(t *target, host string, b []byte) error {
	c, br, err := t.open(host, echoPort, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(b); err != nil {
		return err
	}
	if _, err := br.ReadByte(); err != nil {
		return fmt.Errorf("echo through the tunnel: %w", err)
	}
	return nil
}

// percentile returns the p-th percentile of d (sorting it).
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	i := int(float64(len(d)-1) * p / 100)
	return d[i]
}

// measureBulk opens n tunnels to the source origin and returns the total
// downstream throughput in MB/s (10^6 bytes) over dur, after warm, and the
// CPU time m's parties spent per MB meanwhile.
func measureBulk(t *target, n int, warm, dur time.Duration, m cpuMeter) (float64, cpuUse, error) {
	var total atomic.Int64
	var conns []net.Conn
	var wg sync.WaitGroup
	defer func() {
		for _, c := range conns {
			c.Close()
		}
		wg.Wait()
	}()
	for range n {
		c, br, err := t.open(originHost, sourcePort, 5*time.Second)
		if err != nil {
			return 0, cpuUse{}, err
		}
		conns = append(conns, c)
		wg.Go(func() {
			buf := make([]byte, 256<<10)
			for {
				k, err := br.Read(buf)
				total.Add(int64(k))
				if err != nil {
					return
				}
			}
		})
	}
	time.Sleep(warm)
	c0 := m.sample()
	b0, t0 := total.Load(), time.Now()
	time.Sleep(dur)
	b1, t1 := total.Load(), time.Now()
	cpu := m.per(c0, float64(b1-b0)/1e6)
	if b1 == b0 {
		return 0, cpuUse{}, errors.New("no bytes moved")
	}
	return float64(b1-b0) / t1.Sub(t0).Seconds() / 1e6, cpu, nil
}

// measureRTT sends 64-byte messages over one open tunnel to the echo origin,
// one at a time, for dur after a warm-up, and returns p50 and p99.
func measureRTT(t *target, dur time.Duration) (p50, p99 time.Duration, err error) {
	c, br, err := t.open(originHost, echoPort, 5*time.Second)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(dur + 30*time.Second))
	msg := bytes.Repeat([]byte("r"), 64)
	got := make([]byte, 64)
	round := func() error {
		if _, err := c.Write(msg); err != nil {
			return err
		}
		_, err := io.ReadFull(br, got)
		return err
	}
	for range 500 {
		if err := round(); err != nil {
			return 0, 0, err
		}
	}
	lats := make([]time.Duration, 0, 1<<16)
	for end := time.Now().Add(dur); time.Now().Before(end); {
		t0 := time.Now()
		if err := round(); err != nil {
			return 0, 0, err
		}
		lats = append(lats, time.Since(t0))
	}
	return percentile(lats, 50), percentile(lats, 99), nil
}

// httpResult is plain-HTTP forwarding: requests per second over kept-alive
// client connections (reopened when the proxy closes them).
type httpResult struct {
	Rate     float64
	N        int
	Reopens  int // connections the proxy (or origin) closed after a response
	Errors   int
	FirstErr string
}

func measureHTTP(t *target, workers int, dur time.Duration) httpResult {
	var n, reopens, errs atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	deadline := start.Add(dur)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			h := newHTTPConn(t)
			defer h.close()
			for time.Now().Before(deadline) {
				ok, reopen, err := h.do()
				if err != nil {
					firstErr.CompareAndSwap(nil, err.Error())
					if errs.Add(1) > 1000 {
						return
					}
					continue
				}
				if reopen {
					reopens.Add(1)
				}
				if ok {
					n.Add(1)
				}
			}
		})
	}
	wg.Wait()
	r := httpResult{N: int(n.Load()), Reopens: int(reopens.Load()), Errors: int(errs.Load())}
	r.Rate = float64(r.N) / time.Since(start).Seconds()
	if s, ok := firstErr.Load().(string); ok {
		r.FirstErr = s
	}
	return r
}

// httpConn is a client's kept-alive connection for plain-HTTP requests
// through t (or to the origin, for direct), reopened when closed.
type httpConn struct {
	addr   string
	req    []byte
	c      net.Conn
	br     *bufio.Reader
	served int // requests answered on c
}

func newHTTPConn(t *target) *httpConn {
	hp := net.JoinHostPort(originHost, strconv.Itoa(httpPort))
	h := &httpConn{addr: fmt.Sprintf("127.0.0.1:%d", httpPort), req: []byte("GET /bench HTTP/1.1\r\nHost: " + hp + "\r\n\r\n")}
	if !t.direct() {
		h.addr, h.req = t.addr, []byte("GET http://"+hp+"/bench HTTP/1.1\r\nHost: "+hp+"\r\n"+t.auth+"\r\n")
	}
	return h
}

func (h *httpConn) close() {
	if h.c != nil {
		h.c.Close()
		h.c = nil
	}
}

// do sends one request and reads its answer. ok: it was answered; reopen:
// the connection was closed after it, or between requests without a word
// (any client retries that; ok is false then).
func (h *httpConn) do() (ok, reopen bool, err error) {
	if h.c == nil {
		h.served = 0
		if h.c, err = net.DialTimeout("tcp", h.addr, 5*time.Second); err != nil {
			h.c = nil
			return false, false, err
		}
		h.br = bufio.NewReader(h.c)
	}
	_ = h.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := h.c.Write(h.req); err != nil {
		h.close()
		return false, false, err
	}
	status, hd, err := readHead(h.br)
	if h.served > 0 && err != nil && h.br.Buffered() == 0 && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
		h.close()
		return false, true, nil
	}
	if err == nil && status != 200 {
		err = fmt.Errorf("status %d", status)
	}
	if err == nil && (hd.chunked || hd.contentLength < 0) {
		err = errors.New("response without Content-Length")
	}
	if err == nil {
		_, err = h.br.Discard(int(hd.contentLength))
	}
	if err != nil {
		h.close()
		return false, false, err
	}
	h.served++
	if !hd.keepAlive {
		h.close()
		return true, true, nil
	}
	return true, false, nil
}

// idleLevel is the state of a proxy holding a number of idle tunnels.
type idleLevel struct {
	Want   int     // tunnels asked for
	Opened int     // tunnels the proxy answered 200 (cumulative)
	RSS    int64   // proxy VmRSS, bytes
	FDs    int     // proxy open fds
	PerKiB float64 // (RSS - baseline) / Opened, KiB
}

type idleResult struct {
	BaseRSS  int64
	BaseFDs  int
	Levels   []idleLevel
	Held     int // tunnels that still echoed after the last level
	Failed   int // CONNECTs that failed or were refused
	FirstErr string
	Released bool // the proxy's fds returned to baseline after closing all
}

// measureIdle opens idle tunnels to the echo origin through a freshly started
// proxy up to each level in turn, and reads the proxy's RSS and fds at each.
// At the end every tunnel is checked with a one-byte echo, then all are
// closed and the proxy's fds are watched return to their baseline.
func measureIdle(t *target, levels []int) (idleResult, error) {
	var r idleResult
	pid := t.proc.pid()
	// Warm up: lazy initialisation (pools, the first policy decision) is
	// not a per-tunnel cost.
	for range 32 {
		c, br, err := t.open(originHost, echoPort, 5*time.Second)
		if err != nil {
			return r, fmt.Errorf("warm-up tunnel: %w", err)
		}
		_, _ = c.Write([]byte{'w'})
		_, _ = br.ReadByte()
		c.Close()
	}
	base, fds, err := settle(pid)
	if err != nil {
		return r, err
	}
	r.BaseRSS, r.BaseFDs = base, fds

	var conns []net.Conn
	var brs []*bufio.Reader
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	var mu sync.Mutex
	var failed atomic.Int64
	var firstErr atomic.Value
	for _, want := range levels {
		need := want - len(conns)
		var next atomic.Int64
		var wg sync.WaitGroup
		for range 64 {
			wg.Go(func() {
				for next.Add(1) <= int64(need) && failed.Load() < 200 {
					c, br, err := t.open(originHost, echoPort, 5*time.Second)
					if err == nil {
						// One echo: the tunnel reaches the origin.
						_ = c.SetDeadline(time.Now().Add(5 * time.Second))
						if _, err = c.Write([]byte{'i'}); err == nil {
							_, err = br.ReadByte()
						}
						_ = c.SetDeadline(time.Time{})
						if err != nil {
							c.Close()
						}
					}
					if err != nil {
						firstErr.CompareAndSwap(nil, err.Error())
						failed.Add(1)
						continue
					}
					mu.Lock()
					conns, brs = append(conns, c), append(brs, br)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		rss, fds, err := settle(pid)
		if err != nil {
			return r, err
		}
		l := idleLevel{Want: want, Opened: len(conns), RSS: rss, FDs: fds}
		if l.Opened > 0 {
			l.PerKiB = float64(rss-r.BaseRSS) / float64(l.Opened) / 1024
		}
		r.Levels = append(r.Levels, l)
	}
	r.Failed = int(failed.Load())
	if s, ok := firstErr.Load().(string); ok {
		r.FirstErr = s
	}

	// Are they all still there?
	var held atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(conns) {
					return
				}
				c, br := conns[i], brs[i]
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := c.Write([]byte{'h'}); err != nil {
					continue
				}
				if _, err := br.ReadByte(); err == nil {
					held.Add(1)
				}
			}
		})
	}
	wg.Wait()
	r.Held = int(held.Load())

	for _, c := range conns {
		c.Close()
	}
	conns = nil
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if _, fds, err := procStatus(pid); err == nil && fds <= r.BaseFDs+16 {
			r.Released = true
			break
		}
	}
	return r, nil
}

// settle waits (at most 5 s) for the proxy's RSS to stop changing after a
// burst of work, and returns it with the fd count.
func settle(pid int) (int64, int, error) {
	prev, _, err := procStatus(pid)
	if err != nil {
		return 0, 0, err
	}
	stable := 0
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && stable < 2; {
		time.Sleep(250 * time.Millisecond)
		rss, _, err := procStatus(pid)
		if err != nil {
			return 0, 0, err
		}
		if d := rss - prev; d < prev/200 && d > -prev/200 {
			stable++
		} else {
			stable = 0
		}
		prev = rss
	}
	rss, fds, err := procStatus(pid)
	return rss, fds, err
}
