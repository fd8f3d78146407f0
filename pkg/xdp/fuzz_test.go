package xdp

import (
	"strings"
	"testing"
)

// Seeds beside testdata/fuzz/<target>: the syntax of rule files, and the
// inputs that once went wrong (an empty value read as "any", a field
// given twice, a huge token echoed whole, file text in a message).
var ruleSeeds = []string{
	"--src 198.18.0.0/15 --proto udp --dport 53 --action drop",
	"src=2001:2::1 dport=1000-2000 action=pass priority=-3",
	"--dst 198.18.0.0/15 --action redirect:veth1",
	"--src= --action drop",
	"--src 198.18.0.0/24 --src 198.19.0.0/24 --action drop",
	"root:*:20228:0:99999:7:::",
	"--action redirect:../../4026532245-va",
	"--proto icmp --sport 1 --action pass",
}

// maxMessage bounds every error message: the longest advice plus a few
// tokens cut to maxEcho bytes.
const maxMessage = 300

// FuzzParseRule: a rule either parses into a valid rule that prints back
// to itself, or fails with a short message.
func FuzzParseRule(f *testing.F) {
	for _, s := range ruleSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		r, err := ParseRule(line)
		if err != nil {
			if len(err.Error()) > maxMessage {
				t.Fatalf("message of %d bytes: %.100q", len(err.Error()), err)
			}
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("parsed an invalid rule %q: %v", r.String(), err)
		}
		again, err := ParseRule(r.String())
		if err != nil || again != r {
			t.Fatalf("%q printed as %q, which parses as %+v, %v", line, r.String(), again, err)
		}
	})
}

// vocabulary is the fixed text of every rule file error (rule.go): a token
// of the file may appear in a message only as part of it.
var vocabulary = strings.Join([]string{
	"line field (src) (dst) (proto) (sport) (dport) (priority) (action)",
	"--src --dst --proto --sport --dport --priority --action needs a value",
	"has an empty value: give one, or leave out to match any is given twice: give each field once",
	"unknown field: use src, dst, proto, sport, dport, priority, action",
	"the rule has no action: add --action drop|pass|redirect:IFACE",
	"action: redirect:IFACE needs the name of an interface of `ip link`",
	"action: use drop, pass or redirect:IFACE",
	"port: use a number P or a range P-Q",
	"port: out of range: ports go from 1 to 65535, low to high",
	"protocol: use tcp, udp, icmp, icmpv6 or a number from 1 to 255",
	"--src and --dst: both must be IPv4 or both IPv6",
	"ports need --proto tcp or udp (or no --proto, for both), not",
	"--proto icmp with IPv6 addresses never matches: use icmpv6",
	"--proto icmpv6 with IPv4 addresses never matches: use icmp",
	"address: use a CIDR such as 198.18.0.0/15 or 2001:db8::/32",
	"CIDR: use a prefix such as 198.18.0.0/15 or 2001:db8::/32",
	"priority: use a whole number from -2147483648 to 2147483647",
}, "\n")

// FuzzParseRules: a rule file either loads into rules that print back to
// the same file, or fails with a message that names a line and never
// repeats the file's text.
func FuzzParseRules(f *testing.F) {
	f.Add(strings.Join(ruleSeeds[:3], "\n"))
	f.Add("# comment\r\n--proto icmp --action drop\r\n\n  src 198.18.0.1 action pass # trailing\n")
	for _, s := range ruleSeeds[3:] {
		f.Add("--proto tcp --action pass\n" + s + "\n")
	}
	f.Fuzz(func(t *testing.T, text string) {
		rules, err := ParseRules(text)
		if err != nil {
			msg := err.Error()
			if !strings.HasPrefix(msg, "line ") || len(msg) > maxMessage {
				t.Fatalf("message %.100q", msg)
			}
			for _, tok := range strings.FieldsFunc(text, func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '=' || r == '#' }) {
				tok = strings.TrimLeft(tok, "-")
				// Numbers are line and field numbers, and protocol
				// numbers (ports need tcp or udp, not 47).
				digits := strings.Trim(tok, "0123456789") == ""
				if len(tok) >= 4 && !digits && strings.Contains(msg, tok) && !strings.Contains(vocabulary, tok) {
					t.Fatalf("message %q repeats the file's %q", msg, tok)
				}
			}
			return
		}
		var b strings.Builder
		for _, r := range rules {
			b.WriteString(r.String() + "\n")
		}
		again, err := ParseRules(b.String())
		if err != nil || len(again) != len(rules) {
			t.Fatalf("rules %q reload as %d rules, %v", b.String(), len(again), err)
		}
		for i := range rules {
			if again[i] != rules[i] {
				t.Fatalf("rule %d: %+v reloads as %+v", i, rules[i], again[i])
			}
		}
	})
}
