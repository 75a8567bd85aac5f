package review

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/azegress/azegress/policy"
	"github.com/azegress/azegress/policy/internal/policytest"
)

// replayFiles replays files against p at testAt.
func replayFiles(t testing.TB, p *policy.Policy, files ...string) *ReplayReport {
	t.Helper()
	r := NewReplay(p, testAt)
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Read(name, f); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	return r.Report()
}

// TestReplayGolden replays a proxy log and an observation file recorded
// under testdata/diff/narrowing/old.hcl against its new.hcl.
func TestReplayGolden(t *testing.T) {
	t.Parallel()
	p := load(t, "testdata/diff/narrowing/new.hcl")
	rep := replayFiles(t, p, "testdata/replay/proxy.log", "testdata/replay/observations.jsonl")
	policytest.Golden(t, "testdata/replay/replay.golden", rep.Text())
	policytest.Golden(t, "testdata/replay/replay.md.golden", rep.Markdown())
	b, err := rep.JSON()
	if err != nil {
		t.Fatal(err)
	}
	policytest.Golden(t, "testdata/replay/replay.json.golden", b)
}

// TestReplay checks the counts, decisions and warnings one by one.
func TestReplay(t *testing.T) {
	t.Parallel()
	p := load(t, "testdata/diff/narrowing/new.hcl")
	rep := replayFiles(t, p, "testdata/replay/proxy.log", "testdata/replay/observations.jsonl")
	want := ReplayStats{Files: 2, Lines: 21, Decisions: 8, Observations: 6, Other: 3, Corrupt: 4}
	if rep.Stats != want {
		t.Errorf("stats %+v, want %+v", rep.Stats, want)
	}
	wantWarnings := []string{
		"testdata/replay/proxy.log:10: skipped: invalid JSON at byte 100",
		"testdata/replay/proxy.log:11: skipped: not a JSON object",
		`testdata/replay/proxy.log:14: skipped: "port" is not a whole number from 0 to 65535`,
		"testdata/replay/observations.jsonl:7: skipped: observation without host or port",
	}
	for _, w := range wantWarnings {
		found := false
		for _, g := range rep.Warnings {
			found = found || g == w
		}
		if !found {
			t.Errorf("no warning %q in %q", w, rep.Warnings)
		}
	}
	find := func(block, host string, port uint16) ReplayDest {
		for _, d := range rep.Destinations {
			if d.ClientBlock == block && d.Host == host && d.Port == port {
				return d
			}
		}
		t.Fatalf("no destination %s %s:%d", block, host, port)
		return ReplayDest{}
	}
	for _, tt := range []struct {
		block, host string
		port        uint16
		count       int64
		now         policy.Verdict
		breaks      bool
	}{
		// 3 log records (one rate_limited deny) and observations: run
		// r1's latest count 40, run r2's 7.
		{"app", "management.azure.com", 443, 3 + 40 + 7, policy.VerdictAllow, false},
		{"app", "kv-other.vault.azure.net", 443, 1, policy.VerdictDeny, true},
		{"app", "kv1.vault.azure.net", 443, 1, policy.VerdictAllow, false},
		{"app", "example.org", 443, 1, policy.VerdictDeny, false},
		{"app", "20.1.2.3", 8443, 3, policy.VerdictAllow, false},
		{"", "management.azure.com", 443, 1, policy.VerdictDeny, false},
		{"build", "pypi.org", 443, 12, policy.VerdictDeny, true},
	} {
		d := find(tt.block, tt.host, tt.port)
		if d.Count != tt.count || d.Now.Verdict != tt.now || d.Breaks != tt.breaks {
			t.Errorf("%s %s:%d: count %d, now %s, breaks %v; want %d, %s, %v", tt.block, tt.host, tt.port, d.Count, d.Now.Verdict, d.Breaks, tt.count, tt.now, tt.breaks)
		}
	}
	if rep.Breaks != 2 || rep.BrokenConnections != 13 {
		t.Errorf("breaks %d (%d connections), want 2 (13)", rep.Breaks, rep.BrokenConnections)
	}
	var unused []string
	for _, u := range rep.Unused {
		unused = append(unused, u.ClientBlock+" "+u.Rule+" "+destText(u.Destination, u.Ports))
	}
	// Recorded: management, kv1, old.example.com, 20.1.2.3:8443 (denied
	// then, allowed now) and st-other.blob... (the same).
	wantUnused := "app private-vault 10.20.0.0/24:443"
	if got := strings.Join(unused, "|"); got != wantUnused {
		t.Errorf("unused %q, want %q", got, wantUnused)
	}
}

// TestReplayLongLines skips a line longer than maxLine as corrupt and
// reads on.
func TestReplayLongLines(t *testing.T) {
	t.Parallel()
	p := load(t, "testdata/diff/narrowing/new.hcl")
	rec := `{"msg":"tunnel closed","client_block":"app","host":"management.azure.com","port":443,"rule":"arm"}`
	long := `{"msg":"deny","detail":"` + strings.Repeat("x", maxLine) + `","client_block":"app","host":"a.example.com","port":443}`
	medium := `{"msg":"deny","detail":"` + strings.Repeat("y", 200<<10) + `","client_block":"app","host":"b.example.com","port":443,"reason":"no_rule"}`
	r := NewReplay(p, testAt)
	if err := r.Read("big.log", strings.NewReader(rec+"\n"+long+"\n"+medium+"\n"+rec)); err != nil {
		t.Fatal(err)
	}
	rep := r.Report()
	if rep.Stats.Lines != 4 || rep.Stats.Corrupt != 1 || rep.Stats.Decisions != 3 || len(rep.Destinations) != 2 {
		t.Errorf("stats %+v, %d destinations", rep.Stats, len(rep.Destinations))
	}
	if len(rep.Warnings) != 1 || !strings.HasPrefix(rep.Warnings[0], "big.log:2: skipped: line longer than") {
		t.Errorf("warnings %q", rep.Warnings)
	}
}

// logLines is a reader of n proxy log records cycling over keys
// destinations, made as they are read from lines prepared up front, so
// that reading them allocates nothing.
type logLines struct {
	n, i, keys int
	lines      [][2][]byte // [key][deny?]
	rest       []byte      // of the current line
}

func (l *logLines) Read(p []byte) (int, error) {
	if l.lines == nil {
		for k := range l.keys {
			h := strconv.Itoa(k)
			l.lines = append(l.lines, [2][]byte{
				[]byte(`{"time":"2026-05-30T10:00:01.123456789Z","level":"INFO","msg":"tunnel closed","kind":"connect","client":"10.0.1.5:40001","client_block":"app","mode":"enforce","host":"h` + h + `.vault.azure.net","port":443,"rule":"kv","policy":"/etc/azegress/policy.hcl","label":"Key Vault data plane: vault h` + h + `","bytes_up":1200,"bytes_down":5400,"duration_ms":230,"close_reason":"eof"}` + "\n"),
				[]byte(`{"time":"2026-05-30T10:00:04.123456789Z","level":"WARN","msg":"deny","kind":"connect","client":"10.0.1.6:40004","client_block":"app","mode":"enforce","host":"h` + h + `.example.org","port":443,"policy":"/etc/azegress/policy.hcl","decision":"deny","reason":"no_rule","detail":"no rule of client block \"app\" allows h` + h + `.example.org:443","status":403,"fix":"allow \"example-org\" {\n  hosts = [\"h` + h + `.example.org\"]\n}"}` + "\n"),
			})
		}
	}
	n := 0
	for n < len(p) {
		if len(l.rest) == 0 {
			if l.i == l.n {
				break
			}
			deny := 0
			if l.i%10 == 9 {
				deny = 1
			}
			l.rest = l.lines[l.i%l.keys][deny]
			l.i++
		}
		c := copy(p[n:], l.rest)
		n += c
		l.rest = l.rest[c:]
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// TestReplayBoundedMemory reads a log of 200,000 records (about 74 MB)
// and checks that what replay allocates does not grow with it: one entry
// per distinct destination, nothing per line.
func TestReplayBoundedMemory(t *testing.T) {
	p := load(t, "testdata/diff/narrowing/old.hcl")
	const lines, keys = 200_000, 50
	r := NewReplay(p, testAt)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if err := r.Read("gen.log", &logLines{n: lines, keys: keys}); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	// The generator's own buffer grows a little; replay's lines must not.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Errorf("replay allocated %d MB for %d lines", alloc>>20, lines)
	}
	rep := r.Report()
	if rep.Stats.Decisions != lines || len(rep.Destinations) != keys {
		t.Errorf("stats %+v, %d destinations, want %d decisions and %d destinations", rep.Stats, len(rep.Destinations), lines, keys)
	}
}

// BenchmarkReplay measures how many log lines per second replay reads
// and counts (the floor: 300,000 on the bench machine).
func BenchmarkReplay(b *testing.B) {
	p := load(b, "testdata/diff/narrowing/old.hcl")
	var log bytes.Buffer
	const lines = 100_000
	if _, err := io.Copy(&log, &logLines{n: lines, keys: 200}); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(log.Len()))
	b.ReportAllocs()
	for b.Loop() {
		r := NewReplay(p, testAt)
		if err := r.Read("bench.log", bytes.NewReader(log.Bytes())); err != nil {
			b.Fatal(err)
		}
		if rep := r.Report(); rep.Stats.Decisions != lines {
			b.Fatalf("%+v", rep.Stats)
		}
	}
	b.ReportMetric(float64(lines*b.N)/b.Elapsed().Seconds(), "lines/s")
}

// FuzzScanLine checks the line scanner against encoding/json: on valid
// UTF-8 input whose member names match exactly, both accept or both
// refuse, and accepted lines give the same fields.
func FuzzScanLine(f *testing.F) {
	for _, name := range []string{"testdata/replay/proxy.log", "testdata/replay/observations.jsonl"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		for _, line := range bytes.Split(b, []byte("\n")) {
			f.Add(line)
		}
	}
	for _, s := range []string{`{}`, ` { "port" : 65535 } `, `{"port":65536}`, `{"port":-1}`, `{"port":1.0}`, `{"port":null,"host":null}`,
		`{"host":"a\u0062c"}`, `{"host":"\ud83d\ude00"}`, `{"count":-9223372036854775808}`, `{"count":9223372036854775808}`,
		`{"a":[1,{"b":[true,false,null]}],"msg":"x"}`, `{"msg":"x",}`, `{"msg":"x"} x`, `[]`, `{"port":1e2}`, `{"x":01}`, `{"x":-}`,
		`{"host":"a\x01"}`, `{"host":5}`, `{"ho\u0073t":"x"}`, `{"msg":"a","msg":"b"}`, `{"x":"\u12"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !utf8Valid(b) {
			return
		}
		var ref struct {
			Msg         *string `json:"msg"`
			Run         *string `json:"run"`
			ClientBlock string  `json:"client_block"`
			Host        string  `json:"host"`
			Decision    string  `json:"decision"`
			Rule        string  `json:"rule"`
			Reason      string  `json:"reason"`
			Port        *uint16 `json:"port"`
			Count       *int64  `json:"count"`
		}
		var keys map[string]json.RawMessage
		if json.Unmarshal(b, &keys) == nil {
			for k := range keys {
				for _, name := range []string{"msg", "run", "client_block", "host", "decision", "rule", "reason", "port", "count"} {
					if k != name && strings.EqualFold(k, name) {
						return // encoding/json matches names without case
					}
				}
			}
		}
		refErr := json.Unmarshal(b, &ref)
		if refErr == nil && bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
			// encoding/json takes null for an empty struct; a log line
			// must be an object.
			refErr = errors.New("null is not an object")
		}
		var got lineFields
		err := got.scan(b)
		if (err == nil) != (refErr == nil) {
			t.Fatalf("%q: scan error %v, encoding/json error %v", b, err, refErr)
		}
		if err != nil {
			return
		}
		str := func(p *string) string {
			if p == nil {
				return ""
			}
			return *p
		}
		if got.hasMsg != (ref.Msg != nil) || string(got.msg) != str(ref.Msg) || got.hasRun != (ref.Run != nil) || string(got.run) != str(ref.Run) ||
			string(got.block) != ref.ClientBlock || string(got.host) != ref.Host || string(got.decision) != ref.Decision ||
			string(got.rule) != ref.Rule || string(got.reason) != ref.Reason ||
			got.hasPort != (ref.Port != nil) || ref.Port != nil && got.port != *ref.Port ||
			got.hasCount != (ref.Count != nil) || ref.Count != nil && got.count != *ref.Count {
			t.Fatalf("%q: scan %+v, encoding/json %+v", b, got, ref)
		}
	})
}

func utf8Valid(b []byte) bool { return strings.ToValidUTF8(string(b), "\ufffd") == string(b) }
