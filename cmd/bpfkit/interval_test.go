package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseIntervalArgs(t *testing.T) {
	for _, c := range []struct {
		args  []string
		want  intervalArgs
		error bool
	}{
		{nil, intervalArgs{interval: time.Second}, false},
		{[]string{"2"}, intervalArgs{interval: 2 * time.Second}, false},
		{[]string{"0.5", "3"}, intervalArgs{interval: 500 * time.Millisecond, count: 3}, false},
		{[]string{"250ms", "1"}, intervalArgs{interval: 250 * time.Millisecond, count: 1}, false},
		{[]string{"0"}, intervalArgs{}, true},
		{[]string{"x"}, intervalArgs{}, true},
		{[]string{"1", "-2"}, intervalArgs{}, true},
	} {
		got, err := parseIntervalArgs(c.args, time.Second)
		if (err != nil) != c.error || (err == nil && got != c.want) {
			t.Errorf("%q: %+v, %v", c.args, got, err)
		}
	}
}

// FuzzIntervalArgs: [interval] [count] either parse to a positive
// interval and a positive count (0 when absent), or are refused with one
// line.
func FuzzIntervalArgs(f *testing.F) {
	for _, s := range [][2]string{{"1", "3"}, {"0.5", ""}, {"500ms", "1"}, {"0", ""}, {"-1", "2"}, {"1e400", ""}, {"NaN", ""}, {"1", "-1"}, {"1", "99999999999999999999"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, interval, count string) {
		args := []string{interval}
		if count != "" {
			args = append(args, count)
		}
		ia, err := parseIntervalArgs(args, time.Second)
		if err != nil {
			if msg := err.Error(); strings.Contains(msg, "\n") || len(msg) > 300 {
				t.Fatalf("%q: %q is not one short line", args, msg)
			}
			return
		}
		if ia.interval <= 0 || ia.count < 0 || (count != "" && ia.count == 0) {
			t.Fatalf("%q: interval %v, count %d", args, ia.interval, ia.count)
		}
	})
}
