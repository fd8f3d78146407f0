package output

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzAppendJSONString: any bytes give a valid JSON string that decodes to
// exactly string([]rune(s)): valid UTF-8 unchanged, and each byte that does
// not start a valid sequence replaced by one U+FFFD (as a Go conversion to
// runes does, and encoding/json), not a run of them by one
// (strings.ToValidUTF8): `"\xff\xfe"` is two replacement characters.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", "new\nline", "\xff\xfe", "quote\"back\\slash", "\x00\x1f\x7f",
		"é€𝄞", "\u2028\u2029", "a\xc3", "<script>&", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, s []byte) {
		out := AppendJSONString([]byte("x"), s)
		if out[0] != 'x' {
			t.Fatal("prefix lost")
		}
		var got string
		if err := json.Unmarshal(out[1:], &got); err != nil {
			t.Fatalf("%q encodes to invalid JSON %s: %v", s, out[1:], err)
		}
		if want := string([]rune(string(s))); got != want {
			t.Fatalf("%q decodes to %q, want %q", s, got, want)
		}
		if utf8.Valid(s) && got != string(s) {
			t.Fatalf("valid %q round-trips to %q", s, got)
		}
	})
}

func TestAppendPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"plain/path":     "plain/path",
		"new\nline\tx":   `new\nline\tx`,
		"bad\xffbyte":    `bad\xffbyte`,
		"esc\x1b[31m":    `esc\x1b[31m`,
		`back\slash`:     `back\\slash`,
		"utf8 é€":        "utf8 é€",
		"bidi \u202e rt": `bidi \xe2\x80\xae rt`,
	} {
		if got := string(AppendPrintable(nil, []byte(in))); got != want {
			t.Errorf("%q: %s, want %s", in, got, want)
		}
	}
}

type row struct {
	name string
	n    int
}

func TestPrinterAlignsAndOmits(t *testing.T) {
	fields := []Field[row]{
		{Header: "NAME", Key: "name", Width: -6, Text: func(b []byte, r *row) []byte { return append(b, r.name...) }},
		{Header: "N", Key: "n", Width: 4, Text: func(b []byte, r *row) []byte { return AppendInt(b, r.n) },
			JSON: func(b []byte, r *row) []byte { return AppendInt(b, r.n) }},
		{Key: "big", Omit: func(r *row) bool { return r.n < 100 }, JSON: func(b []byte, r *row) []byte { return AppendBool(b, true) }},
		{Header: "LAST", Text: func(b []byte, r *row) []byte { return append(b, "end"...) }},
	}
	var buf bytes.Buffer
	p := NewPrinter(&buf, Table, fields)
	p.Header()
	p.Print(&row{"a", 1})
	p.Print(&row{"longer-name", 1000})
	p.Flush()
	want := "NAME      N LAST\na         1 end\nlonger-name 1000 end\n"
	if buf.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", buf.String(), want)
	}

	buf.Reset()
	p = NewPrinter(&buf, JSON, fields)
	p.Header()
	p.Print(&row{"a", 1})
	p.Print(&row{"b\"", 1000})
	p.Flush()
	want = "{\"name\":\"a\",\"n\":1}\n{\"name\":\"b\\\"\",\"n\":1000,\"big\":true}\n"
	if buf.String() != want {
		t.Errorf("json:\n%s\nwant:\n%s", buf.String(), want)
	}
}

func TestParseFormat(t *testing.T) {
	if f, err := ParseFormat("json"); err != nil || f != JSON {
		t.Error("json")
	}
	if f, err := ParseFormat("table"); err != nil || f != Table {
		t.Error("table")
	}
	if _, err := ParseFormat("yaml"); err == nil {
		t.Error("yaml accepted")
	}
}

func BenchmarkPrintJSON(b *testing.B) {
	fields := []Field[row]{
		{Key: "name", Text: func(d []byte, r *row) []byte { return append(d, r.name...) }},
		{Key: "n", JSON: func(d []byte, r *row) []byte { return AppendInt(d, r.n) }},
	}
	var buf bytes.Buffer
	p := NewPrinter(&buf, JSON, fields)
	r := row{"/usr/lib/x86_64-linux-gnu/libc.so.6", 42}
	b.ReportAllocs()
	for b.Loop() {
		p.Print(&r)
		if buf.Len() > 1<<20 {
			buf.Reset()
		}
	}
}

func TestAppendTimes(t *testing.T) {
	east := time.FixedZone("X", 5*3600+30*60)
	for _, tm := range []time.Time{
		time.Date(2026, 11, 26, 7, 30, 1, 123456789, time.UTC),
		time.Date(2026, 11, 26, 7, 30, 1, 5, time.UTC), // same second: cached
		time.Date(2026, 11, 26, 7, 30, 2, 0, time.UTC),
		time.Date(1999, 12, 31, 23, 59, 59, 999999999, east),
	} {
		if got, want := string(AppendJSONTime(nil, tm)), `"`+tm.Format(RFC3339Nano)+`"`; got != want {
			t.Errorf("JSON time %s, want %s", got, want)
		}
		if got, want := string(AppendClock(nil, tm)), tm.Format("15:04:05.000000"); got != want {
			t.Errorf("clock %s, want %s", got, want)
		}
	}
}
