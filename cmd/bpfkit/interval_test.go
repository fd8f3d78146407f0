package main

import (
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
