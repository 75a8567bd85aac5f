package host

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParseHost(t *testing.T) {
	t.Parallel()
	label63 := strings.Repeat("a", 63)
	name253 := strings.Repeat(label63+".", 3) + strings.Repeat("b", 61) // 64*3+61 = 253
	for _, tt := range []struct {
		name    string
		in      string
		want    string // Host.String()
		wantIP  bool
		wantErr string
	}{
		// Names.
		{name: "plain", in: "management.azure.com", want: "management.azure.com"},
		{name: "uppercase", in: "Management.AZURE.com", want: "management.azure.com"},
		{name: "trailing dot", in: "management.azure.com.", want: "management.azure.com"},
		{name: "single label", in: "localhost", want: "localhost"},
		{name: "underscore", in: "_dmarc.example.com", want: "_dmarc.example.com"},
		{name: "hyphens", in: "r3---sn-apo3qvuoxuxbt-j5pe.example", want: "r3---sn-apo3qvuoxuxbt-j5pe.example"},
		{name: "unicode", in: "bücher.example", want: "xn--bcher-kva.example"},
		{name: "unicode uppercase", in: "BÜCHER.Example", want: "xn--bcher-kva.example"},
		{name: "punycode", in: "xn--bcher-kva.example", want: "xn--bcher-kva.example"},
		{name: "punycode uppercase", in: "XN--BCHER-KVA.example", want: "xn--bcher-kva.example"},
		{name: "fullwidth letters", in: "ｅｘａｍｐｌｅ.com", want: "example.com"},
		{name: "ideographic dot", in: "a.example\u3002com", want: "a.example.com"},
		{name: "hex-looking label not last", in: "0x1.example", want: "0x1.example"},
		{name: "not a hex number", in: "foo.0x1g", want: "foo.0x1g"},
		{name: "digits first label", in: "123.example.com", want: "123.example.com"},
		{name: "63-byte label", in: label63 + ".com", want: label63 + ".com"},
		{name: "253-byte name", in: name253, want: name253},
		{name: "253-byte name with dot", in: name253 + ".", want: name253},

		// IPv6.
		{name: "ipv6", in: "2001:db8::1", want: "2001:db8::1", wantIP: true},
		{name: "ipv6 brackets", in: "[2001:db8::1]", want: "2001:db8::1", wantIP: true},
		{name: "ipv6 loopback", in: "[::1]", want: "::1", wantIP: true},
		{name: "ipv6 uppercase", in: "[2001:DB8::A]", want: "2001:db8::a", wantIP: true},
		{name: "ipv4-mapped", in: "::ffff:10.0.0.1", want: "::ffff:10.0.0.1", wantIP: true},

		// IPv4 in every inet_aton spelling.
		{name: "dotted quad", in: "127.0.0.1", want: "127.0.0.1", wantIP: true},
		{name: "dotted quad trailing dot", in: "127.0.0.1.", want: "127.0.0.1", wantIP: true},
		{name: "decimal", in: "2130706433", want: "127.0.0.1", wantIP: true},
		{name: "octal", in: "0177.0.0.1", want: "127.0.0.1", wantIP: true},
		{name: "hex part", in: "0x7f.0.0.1", want: "127.0.0.1", wantIP: true},
		{name: "hex part uppercase", in: "0X7F.0.0.1", want: "127.0.0.1", wantIP: true},
		{name: "hex whole", in: "0x7f000001", want: "127.0.0.1", wantIP: true},
		{name: "two parts", in: "127.1", want: "127.0.0.1", wantIP: true},
		{name: "three parts", in: "127.0.1", want: "127.0.0.1", wantIP: true},
		{name: "three parts wide last", in: "10.1.65535", want: "10.1.255.255", wantIP: true},
		{name: "octal zero", in: "00.0.0.0", want: "0.0.0.0", wantIP: true},
		{name: "bare 0x", in: "0x", want: "0.0.0.0", wantIP: true},
		{name: "max", in: "4294967295", want: "255.255.255.255", wantIP: true},
		{name: "fullwidth digits", in: "１２７.０.０.１", want: "127.0.0.1", wantIP: true},

		// Errors.
		{name: "empty", in: "", wantErr: "empty host name"},
		{name: "only dot", in: ".", wantErr: "empty host name"},
		{name: "two trailing dots", in: "example.com..", wantErr: "empty label in host name"},
		{name: "empty label", in: "a..com", wantErr: "empty label in host name"},
		{name: "leading dot", in: ".example.com", wantErr: "empty label in host name"},
		{name: "long label", in: label63 + "a.com", wantErr: "label longer than 63 bytes"},
		{name: "long name", in: "a" + name253, wantErr: "host name longer than 253 bytes"},
		{name: "space", in: "exa mple.com", wantErr: "space in host name"},
		{name: "nul", in: "exa\x00mple.com", wantErr: "control character in host name"},
		{name: "tab", in: "exa\tmple.com", wantErr: "control character in host name"},
		{name: "del", in: "exa\x7fmple.com", wantErr: "control character in host name"},
		{name: "percent", in: "%65xample.com", wantErr: "percent-encoded characters are not allowed in host names"},
		{name: "bang", in: "exa!mple.com", wantErr: "invalid character in host name"},
		{name: "slash", in: "example.com/x", wantErr: "invalid character in host name"},
		{name: "wildcard", in: "*.example.com", wantErr: "wildcard in host name"},
		{name: "bad punycode", in: "xn--a.example", wantErr: "invalid internationalized domain name"},
		{name: "ascii punycode", in: "xn--example-.com", wantErr: "invalid internationalized domain name"},
		{name: "invalid utf-8", in: "0\x87", wantErr: "invalid UTF-8 in host name"},
		{name: "zero width joiner", in: "a\u200db.com", wantErr: "invalid internationalized domain name"},
		{name: "ipv6 zone", in: "fe80::1%eth0", wantErr: "IPv6 zone not allowed"},
		{name: "ipv6 zone brackets", in: "[fe80::1%25eth0]", wantErr: "IPv6 zone not allowed"},
		{name: "ipv6 unclosed", in: "[::1", wantErr: "invalid IPv6 address"},
		{name: "ipv6 garbage", in: "::g", wantErr: "invalid IPv6 address"},
		{name: "ipv6 empty brackets", in: "[]", wantErr: "invalid IPv6 address"},
		{name: "ipv4 in brackets", in: "[127.0.0.1]", wantErr: "brackets are only allowed around IPv6 addresses"},
		{name: "host with port", in: "example.com:443", wantErr: "invalid IPv6 address"},
		{name: "ipv4 part out of range", in: "1.2.3.999", wantErr: "IPv4 address part out of range"},
		{name: "ipv4 first part out of range", in: "256.0.0.1", wantErr: "IPv4 address part out of range"},
		{name: "ipv4 too big", in: "4294967296", wantErr: "IPv4 address part out of range"},
		{name: "ipv4 two parts too big", in: "1.16777216", wantErr: "IPv4 address part out of range"},
		{name: "ipv4 huge", in: "99999999999999999999999", wantErr: "IPv4 address part out of range"},
		{name: "ipv4 five parts", in: "1.2.3.4.5", wantErr: "invalid IPv4 address"},
		{name: "ipv4 bad octal", in: "08.0.0.1", wantErr: "host name ends in a number but is not a valid IPv4 address"},
		{name: "ipv4 empty part", in: "1..1", wantErr: "host name ends in a number but is not a valid IPv4 address"},
		{name: "name ending in number", in: "foo.123", wantErr: "host name ends in a number but is not a valid IPv4 address"},
		{name: "name ending in hex", in: "foo.0x10", wantErr: "host name ends in a number but is not a valid IPv4 address"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h, err := Parse(tt.in)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("Parse(%q) = %v, %v; want error %q", tt.in, h, err, tt.wantErr)
				}
				if h != (Host{}) {
					t.Errorf("Parse(%q) returned %#v with an error", tt.in, h)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if got := h.String(); got != tt.want {
				t.Errorf("Parse(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if h.IsIP() != tt.wantIP {
				t.Errorf("Parse(%q).IsIP() = %v, want %v", tt.in, h.IsIP(), tt.wantIP)
			}
			if (h.Name == "") == (h.IP == netip.Addr{}) {
				t.Errorf("Parse(%q) = %#v; want exactly one of Name and IP", tt.in, h)
			}
		})
	}
}

func TestParseHostAllocs(t *testing.T) {
	for _, in := range []string{"management.azure.com", "management.azure.com.", "a.b.c.blob.core.windows.net", "10.0.0.1", "[2001:db8::1]"} {
		if n := testing.AllocsPerRun(100, func() {
			if _, err := Parse(in); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("Parse(%q) allocates %v times, want 0", in, n)
		}
	}
}

func FuzzParseHost(f *testing.F) {
	for _, s := range []string{
		"management.azure.com", "MANAGEMENT.azure.com.", "bücher.example", "xn--bcher-kva.example",
		"[::1]", "::ffff:1.2.3.4", "fe80::1%eth0", "2130706433", "0177.0.0.1", "0x7f.0.0.1", "127.1",
		"1.2.3.999", "foo.123", "a..b", "a b", "%41", "_x.y", "１２７.０.０.１", "ｅｘａｍｐｌｅ.com", "xn--a",
		"a.example\u3002com", "\u00ad.com", "ß.de", "ς.gr",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := Parse(s)
		// The shortcut for normalized names answers as the whole parse.
		if name, ok := normalName(s); ok {
			if h2, err := parse(s); err != nil || h2 != (Host{Name: name}) {
				t.Fatalf("normalName(%q) = %q, but parse gives %#v, %v", s, name, h2, err)
			}
		}
		if err != nil {
			if h != (Host{}) {
				t.Fatalf("Parse(%q) returned %#v with error %v", s, h, err)
			}
			return
		}
		if h.IsIP() == (h.Name != "") {
			t.Fatalf("Parse(%q) = %#v; want exactly one of Name and IP", s, h)
		}
		h2, err := Parse(h.String())
		if err != nil {
			t.Fatalf("Parse(%q) = %q, but Parse(%q): %v", s, h, h, err)
		}
		if h2 != h {
			t.Fatalf("not idempotent: Parse(%q) = %#v, Parse(%q) = %#v", s, h, h.String(), h2)
		}
		if h.IsIP() {
			return
		}
		// A normalized name is lowercase LDH-or-underscore ASCII of valid
		// length; the fast path must accept it without allocating.
		if err := validName(h.Name); err != nil {
			t.Fatalf("Parse(%q) = %q, which is not a valid name: %v", s, h.Name, err)
		}
		if strings.ToLower(h.Name) != h.Name {
			t.Fatalf("Parse(%q) = %q is not lowercase", s, h.Name)
		}
		// The slow path (IDNA) must agree with the fast path on ASCII.
		if a, err := idnaProfile.ToASCII(h.Name); err != nil || a != h.Name {
			t.Fatalf("IDNA(%q) = %q, %v; want it unchanged", h.Name, a, err)
		}
	})
}

func BenchmarkParseHost(b *testing.B) {
	for _, bb := range []struct {
		name string
		in   string
	}{
		{"normalized", "management.azure.com"},
		{"uppercase", "Management.Azure.com"},
		{"unicode", "bücher.example"},
		{"ipv4", "10.0.1.5"},
		{"ipv6", "[2001:db8::1]"},
	} {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Parse(bb.in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
