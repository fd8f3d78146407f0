package main

import (
	"strings"
	"testing"
)

// TestSchedFlagErrors: wrong flags of the scheduler tools fail before
// anything is loaded, with a line that says what to do.
func TestSchedFlagErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"runqlat", "-P", "-L"}, "choose one of -P, -L and --pidnss"},
		{[]string{"runqlat", "0"}, "must be positive"},
		{[]string{"cswitch", "1", "x"}, "positive number of intervals"},
		{[]string{"offcputime", "-k", "-u"}, "at most one of kernel-only"},
		{[]string{"offcputime", "--state", "Z"}, "use S (sleeping)"},
		{[]string{"offcputime", "-m", "100", "-M", "10"}, "below the minimum"},
		{[]string{"offcputime", "abc"}, "give seconds"},
		{[]string{"sched", "record"}, "give the trace file to write with -w"},
	} {
		root := newRootCmd()
		root.SetArgs(c.args)
		err := root.Execute()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.args, err, c.want)
		}
	}
}
