package asim

import (
	"log/slog"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// Records are written by hand rather than through encoding/json's
// reflection, which cost four times slog's JSON handler per tunnel
// (BenchmarkHandle). FuzzAppendJSON holds the two to the same output.

// Fields are the attributes of a record that no schema field holds
// (AdditionalFields, a dynamic column), in the record's order.
type Fields []slog.Attr

// MarshalJSON writes f as a JSON object.
func (f Fields) MarshalJSON() ([]byte, error) { return appendFields(nil, f), nil }

// AppendJSON appends r as one JSON object, its fields in the struct's order
// and left out when empty, as encoding/json writes it (with HTML
// characters unescaped).
func (r *Record) AppendJSON(b []byte) []byte {
	e := objWriter{b: append(b, '{')}
	e.str("TimeGenerated", r.TimeGenerated, true)
	e.int("EventCount", int64(r.EventCount), true)
	e.str("EventStartTime", r.EventStartTime, true)
	e.str("EventEndTime", r.EventEndTime, true)
	e.str("EventType", r.EventType, true)
	e.str("EventResult", r.EventResult, true)
	e.str("EventResultDetails", r.EventResultDetails, false)
	e.str("EventOriginalResultDetails", r.EventOriginalResultDetails, false)
	e.str("EventSeverity", r.EventSeverity, true)
	e.str("EventOriginalSeverity", r.EventOriginalSeverity, true)
	e.str("EventMessage", r.EventMessage, false)
	e.str("EventProduct", r.EventProduct, true)
	e.str("EventProductVersion", r.EventProductVersion, false)
	e.str("EventVendor", r.EventVendor, true)
	e.str("EventSchema", r.EventSchema, true)
	e.str("EventSchemaVersion", r.EventSchemaVersion, true)
	e.str("Dvc", r.Dvc, false)
	e.str("DvcHostname", r.DvcHostname, false)
	e.str("DvcAction", r.DvcAction, true)
	e.str("DvcOriginalAction", r.DvcOriginalAction, false)
	e.str("SrcIpAddr", r.SrcIpAddr, false)
	e.int("SrcPortNumber", int64(r.SrcPortNumber), false)
	e.str("SrcUserId", r.SrcUserId, false)
	e.str("SrcUserIdType", r.SrcUserIdType, false)
	e.str("SrcUserType", r.SrcUserType, false)
	e.str("DstIpAddr", r.DstIpAddr, false)
	e.int("DstPortNumber", int64(r.DstPortNumber), false)
	e.str("DstHostname", r.DstHostname, false)
	e.str("DstDomain", r.DstDomain, false)
	e.str("DstDomainType", r.DstDomainType, false)
	e.str("DstFQDN", r.DstFQDN, false)
	e.str("NetworkApplicationProtocol", r.NetworkApplicationProtocol, false)
	e.str("NetworkProtocol", r.NetworkProtocol, true)
	e.str("NetworkDirection", r.NetworkDirection, true)
	e.ptr("NetworkDuration", r.NetworkDuration)
	e.ptr("SrcBytes", r.SrcBytes)
	e.ptr("DstBytes", r.DstBytes)
	e.ptr("NetworkBytes", r.NetworkBytes)
	e.str("Url", r.Url, false)
	e.str("HttpRequestMethod", r.HttpRequestMethod, false)
	e.str("RuleName", r.RuleName, false)
	e.str("Rule", r.Rule, false)
	e.str("ThreatCategory", r.ThreatCategory, false)
	if len(r.AdditionalFields) > 0 {
		e.key("AdditionalFields")
		e.b = appendFields(e.b, r.AdditionalFields)
	}
	return append(e.b, '}')
}

// objWriter appends the members of a JSON object.
type objWriter struct {
	b    []byte
	more bool // a member was written: the next needs a comma
}

func (e *objWriter) key(k string) {
	if e.more {
		e.b = append(e.b, ',')
	}
	e.more = true
	e.b = appendString(e.b, k)
	e.b = append(e.b, ':')
}

func (e *objWriter) str(k, v string, always bool) {
	if v != "" || always {
		e.key(k)
		e.b = appendString(e.b, v)
	}
}

func (e *objWriter) int(k string, v int64, always bool) {
	if v != 0 || always {
		e.key(k)
		e.b = strconv.AppendInt(e.b, v, 10)
	}
}

func (e *objWriter) ptr(k string, v *int64) {
	if v != nil {
		e.key(k)
		e.b = strconv.AppendInt(e.b, *v, 10)
	}
}

// appendFields appends as as a JSON object.
func appendFields(b []byte, as []slog.Attr) []byte {
	e := objWriter{b: append(b, '{')}
	for _, a := range as {
		e.key(a.Key)
		e.b = appendValue(e.b, a.Value.Resolve())
	}
	return append(e.b, '}')
}

// appendValue appends v as JSON: numbers and booleans as such, a group as
// an object, a float JSON cannot hold (NaN, ±Inf) and everything else as
// its string.
func appendValue(b []byte, v slog.Value) []byte {
	switch v.Kind() {
	case slog.KindString:
		return appendString(b, v.String())
	case slog.KindInt64:
		return strconv.AppendInt(b, v.Int64(), 10)
	case slog.KindUint64:
		return strconv.AppendUint(b, v.Uint64(), 10)
	case slog.KindFloat64:
		if f := v.Float64(); !math.IsNaN(f) && !math.IsInf(f, 0) {
			return strconv.AppendFloat(b, f, 'g', -1, 64)
		}
	case slog.KindBool:
		return strconv.AppendBool(b, v.Bool())
	case slog.KindDuration:
		return appendString(b, v.Duration().String())
	case slog.KindTime:
		return appendString(b, v.Time().UTC().Format(time.RFC3339Nano))
	case slog.KindGroup:
		return appendFields(b, v.Group())
	}
	return appendString(b, v.String())
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string the way encoding/json does
// without HTML escaping: quotes, backslashes and control characters
// escaped, each byte of invalid UTF-8 replaced by U+FFFD, and U+2028 and
// U+2029 escaped (JavaScript reads them as line ends).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= ' ' && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
