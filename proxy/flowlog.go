package proxy

import (
	"context"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// The per-flow records (msgTunnelClosed, msgRequest) are most of the log,
// and slog spent about a sixth of the proxy's user CPU per tunnel on them: a
// Record with its attributes copied to the heap, the caller's PC, and the
// JSON handler's walk over every kind of value. When the Logger is serve's
// JSON one (LogWriter.JSONHandler), logFlow writes them into the LogWriter
// itself: the same bytes, without slog. Every other record, and every
// record of any other handler (ASIM, a caller's own), goes through slog.

// logFlow logs a per-flow record: msg at Info with attrs.
func (s *Server) logFlow(ctx context.Context, msg string, attrs []slog.Attr) {
	if s.flowJSON != nil && s.log.Enabled(ctx, slog.LevelInfo) {
		var buf [1 << 10]byte
		if b, ok := appendJSONRecord(buf[:0], time.Now(), msg, attrs); ok {
			_, _ = s.flowJSON.Write(b) // as slog.Logger ignores its handler's error
			return
		}
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, msg, attrs...)
}

// jsonLogWriter is the LogWriter that log's handler writes to when that
// handler is the LogWriter's JSONHandler (not one derived from it by With
// or WithGroup), or nil.
func jsonLogWriter(log *slog.Logger) *LogWriter {
	if h, ok := log.Handler().(*flushHandler); ok && h.json {
		return h.l
	}
	return nil
}

// appendJSONRecord appends the line slog.JSONHandler (with no option but
// its level) writes for a record at Info at t with msg and attrs, and
// reports whether it could: attributes of a kind the per-flow records do
// not have (anything but strings, integers and times of the years 0-9999,
// or an empty key) are left to slog.
func appendJSONRecord(b []byte, t time.Time, msg string, attrs []slog.Attr) ([]byte, bool) {
	b = append(b, `{"time":`...)
	b, ok := appendRecordTime(b, t)
	if !ok {
		return b, false
	}
	b = append(b, `,"level":"INFO","msg":`...)
	b = appendJSONString(b, msg)
	for _, a := range attrs {
		if a.Key == "" {
			return b, false
		}
		b = append(b, ',')
		b = appendJSONString(b, a.Key)
		b = append(b, ':')
		switch a.Value.Kind() {
		case slog.KindString:
			b = appendJSONString(b, a.Value.String())
		case slog.KindInt64:
			b = strconv.AppendInt(b, a.Value.Int64(), 10)
		case slog.KindTime:
			if b, ok = appendJSONTime(b, a.Value.Time()); !ok {
				return b, false
			}
		default:
			return b, false
		}
	}
	return append(b, "}\n"...), true
}

// appendJSONTime appends t as slog's JSON handler does, RFC 3339 with
// nanoseconds, unless its year has other than four digits (slog writes an
// error there).
func appendJSONTime(b []byte, t time.Time) ([]byte, bool) {
	if y := t.Year(); y < 0 || y >= 10000 {
		return b, false
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), true
}

// appendRecordTime is appendJSONTime for the time of a record, formatted
// to the second once a second (it was a tenth of a record's cost).
func appendRecordTime(b []byte, t time.Time) ([]byte, bool) {
	s := lastSecond.Load()
	if s == nil || s.unix != t.Unix() || s.loc != t.Location() {
		if y := t.Year(); y < 0 || y >= 10000 {
			return b, false
		}
		f := t.AppendFormat(nil, time.RFC3339) // date, time and zone: what RFC3339Nano has around the fraction
		s = &second{unix: t.Unix(), loc: t.Location(), date: string(f[:19]), zone: string(f[19:])}
		lastSecond.Store(s)
	}
	b = append(b, '"')
	b = append(b, s.date...)
	b = appendFraction(b, t.Nanosecond())
	b = append(b, s.zone...)
	return append(b, '"'), true
}

// second is a second in a time zone, formatted.
type second struct {
	unix int64
	loc  *time.Location
	date string // 2006-01-02T15:04:05
	zone string // Z07:00
}

// lastSecond is the second of the last record.
var lastSecond atomic.Pointer[second]

// appendFraction appends ns nanoseconds as RFC3339Nano does: a dot and up
// to nine digits without trailing zeros, or nothing for none.
func appendFraction(b []byte, ns int) []byte {
	if ns == 0 {
		return b
	}
	d := [10]byte{'.'}
	for i := 9; i > 0; i-- {
		d[i] = byte('0' + ns%10)
		ns /= 10
	}
	n := len(d)
	for d[n-1] == '0' {
		n--
	}
	return append(b, d[:n]...)
}

// appendJSONString appends s quoted as slog's JSON handler quotes it: " and
// \ escaped, control bytes as \n, \r, \t or \u00XX, each byte of invalid
// UTF-8 as \ufffd, and U+2028 and U+2029 escaped; unlike encoding/json it
// leaves <, > and & (and DEL) alone.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for {
		n := safeLen(s)
		b = append(b, s[:n]...)
		if n == len(s) {
			return append(b, '"')
		}
		b, s = appendEscaped(b, s[n:])
	}
}

// appendEscaped appends the first character of s, which is not jsonSafe,
// as appendJSONString does, and returns the rest of s.
func appendEscaped(b []byte, s string) ([]byte, string) {
	if c := s[0]; c < utf8.RuneSelf {
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, `\n`...)
		case '\r':
			b = append(b, `\r`...)
		case '\t':
			b = append(b, `\t`...)
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
		}
		return b, s[1:]
	}
	r, size := utf8.DecodeRuneInString(s)
	switch {
	case r == utf8.RuneError && size == 1:
		b = append(b, `\ufffd`...)
	case r == '\u2028' || r == '\u2029':
		b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
	default:
		b = append(b, s[:size]...)
	}
	return b, s[size:]
}

// safeLen is the length of s's longest prefix of jsonSafe bytes. It looks
// at eight bytes at a time, then four, then one.
func safeLen(s string) int {
	i := 0
	for ; len(s)-i >= 8; i += 8 {
		b := s[i : i+8]
		if !safeWord(uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
			uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56) {
			break
		}
	}
	if len(s)-i >= 4 {
		b := s[i : i+4]
		if safeWord(uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 | 0x20202020<<32) {
			i += 4
		}
	}
	for ; i < len(s); i++ {
		if !jsonSafe[s[i]] {
			return i
		}
	}
	return len(s)
}

// safeWord reports whether the eight bytes of w are jsonSafe: none above
// ASCII (top bit set), below ' ', " or \. With every byte ASCII, w less
// ' ' in each byte (or w XOR " or \, less 1 in each byte) borrows only at
// a byte below ' ' (equal to " or \), setting that byte's top bit.
func safeWord(w uint64) bool {
	const ones, tops = 0x0101010101010101, 0x8080808080808080
	return (w|(w-ones*' ')|((w^(ones*'"'))-ones)|((w^(ones*'\\'))-ones))&tops == 0
}

// jsonSafe are the bytes appendJSONString copies as they are: ASCII but
// control bytes, " and \.
var jsonSafe = func() (safe [256]bool) {
	for c := ' '; c < utf8.RuneSelf; c++ {
		safe[c] = c != '"' && c != '\\'
	}
	return safe
}()

const hexDigits = "0123456789abcdef"
