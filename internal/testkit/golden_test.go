package testkit

import "testing"

func TestDiff(t *testing.T) {
	for _, tc := range []struct{ a, b, want string }{
		{"x\n", "x\n", ""},
		{"a\nb\nc\n", "a\nB\nc\n", " a\n-b\n+B\n c\n"},
		{"", "new\n", "+new\n"},
		{"old\n", "", "-old\n"},
		{"a\n", "a\nb", " a\n+\"b\" (no newline at the end)\n"},
		{"tab\tok\n", "bad\x01\n", "-tab\tok\n+\"bad\\x01\"\n"},
	} {
		if got := Diff([]byte(tc.a), []byte(tc.b)); got != tc.want {
			t.Errorf("Diff(%q, %q) = %q, want %q", tc.a, tc.b, got, tc.want)
		}
	}
}
