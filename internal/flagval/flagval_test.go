package flagval

import (
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// oneLine checks what a refused value says: one short line.
func oneLine(t *testing.T, in string, err error) {
	t.Helper()
	if msg := err.Error(); strings.Contains(msg, "\n") || len(msg) > 200 {
		t.Fatalf("%q: message %q is not one short line", in, msg)
	}
}

func TestID(t *testing.T) {
	max := PIDMax()
	for in, want := range map[string]string{
		"1": "", strconv.FormatUint(max-1, 10): "",
		"0": "idle task", strconv.FormatUint(max, 10): "above this kernel's pid_max", "4294967296": "above",
		"-1": "give a process id", "abc": "give a process id", "": "give a process id", " 1": "give a process id",
	} {
		p := uint32(7)
		err := PID(&p).Set(in)
		if want == "" {
			if err != nil || strconv.FormatUint(uint64(p), 10) != in {
				t.Errorf("PID %q: %v, value %d", in, err, p)
			}
		} else if err == nil || !strings.Contains(err.Error(), want) || p != 7 {
			t.Errorf("PID %q: %v (value %d), want an error with %q", in, err, p, want)
		}
	}
}

func TestUID(t *testing.T) {
	var p *uint32
	for in, ok := range map[string]bool{"0": true, "1000": true, "4294967294": true,
		"4294967295": false, "4294967296": false, "-5": false, "x": false} {
		p = nil
		err := UID(&p).Set(in)
		if ok != (err == nil) || ok != (p != nil) {
			t.Errorf("UID %q: %v, set %v", in, err, p != nil)
		}
		if ok && strconv.FormatUint(uint64(*p), 10) != in {
			t.Errorf("UID %q stored %d", in, *p)
		}
	}
}

func TestDuration(t *testing.T) {
	var d time.Duration
	for in, want := range map[string]time.Duration{"0": 0, "0s": 0, "1.5s": 1500 * time.Millisecond, "-1s": -1, "abc": -1, "5": -1} {
		d = 42
		err := Duration(&d).Set(in)
		if want < 0 {
			if err == nil || d != 42 {
				t.Errorf("Duration %q accepted (%v)", in, d)
			}
			continue
		}
		if err != nil || d != want {
			t.Errorf("Duration %q: %v, %v", in, d, err)
		}
	}
	if err := Interval(&d).Set("0s"); err == nil {
		t.Error("Interval 0s accepted")
	}
}

func TestInt(t *testing.T) {
	var n int
	v := Int(&n, 1, 16, "entries")
	for in, ok := range map[string]bool{"1": true, "16": true, "0": false, "17": false, "-1": false, "1e3": false, "0x10": true} {
		n = 99
		if err := v.Set(in); ok != (err == nil) || (!ok && n != 99) {
			t.Errorf("Int %q: %v, value %d", in, err, n)
		}
	}
}

// FuzzID: any text either sets an id from 1 to pid_max-1 that reads back
// as the number given, or is refused with one line and nothing set.
func FuzzID(f *testing.F) {
	for _, s := range []string{"1", "0", "-1", "4194304", "99999999999999999999", "+5", "0x10", "1_000", " 7", "7\n"} {
		f.Add(s)
	}
	max := PIDMax()
	f.Fuzz(func(t *testing.T, s string) {
		p := uint32(7)
		err := PID(&p).Set(s)
		if err != nil {
			oneLine(t, s, err)
			if p != 7 {
				t.Fatalf("%q refused but set %d", s, p)
			}
			return
		}
		n, perr := strconv.ParseUint(s, 10, 64)
		if perr != nil || n == 0 || n >= max || uint64(p) != n {
			t.Fatalf("%q accepted as %d", s, p)
		}
	})
}

// FuzzUID: a uid from 0 to 2^32-2 exactly as given, or one refusal line;
// nothing wraps around to root.
func FuzzUID(f *testing.F) {
	for _, s := range []string{"0", "4294967294", "4294967295", "4294967296", "-5", "18446744073709551616", "00", "1e3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var p *uint32
		err := UID(&p).Set(s)
		if err != nil {
			oneLine(t, s, err)
			if p != nil {
				t.Fatalf("%q refused but set", s)
			}
			return
		}
		n, perr := strconv.ParseUint(s, 10, 64)
		if perr != nil || n > 4294967294 || uint64(*p) != n {
			t.Fatalf("%q accepted as %d", s, *p)
		}
	})
}

// FuzzDuration: limits are never negative, intervals always positive, and
// what is accepted is what time.ParseDuration reads.
func FuzzDuration(f *testing.F) {
	for _, s := range []string{"0", "1s", "-1s", "1.5h", "9223372036854775807ns", "-0s", "1e3s", ".5s", "5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, interval := range []bool{false, true} {
			d := time.Duration(42)
			v := Duration(&d)
			if interval {
				v = Interval(&d)
			}
			err := v.Set(s)
			want, perr := time.ParseDuration(s)
			if err != nil {
				oneLine(t, s, err)
				if d != 42 {
					t.Fatalf("%q refused but set %v", s, d)
				}
				if perr == nil && want > 0 || perr == nil && want == 0 && !interval {
					t.Fatalf("%q (%v) refused: %v", s, want, err)
				}
				continue
			}
			if perr != nil || d != want || d < 0 || (interval && d == 0) {
				t.Fatalf("%q accepted as %v (interval %v)", s, d, interval)
			}
		}
	})
}

// FuzzInt: a bounded number flag holds only numbers in its range; the
// ring size flag only what loader accepts.
func FuzzInt(f *testing.F) {
	for _, s := range []string{"0", "1", "131072", "131073", "-1", "0x20000", "4096", "9223372036854775808", "077"} {
		f.Add(s)
	}
	pow2 := func(n int) error {
		if n < 4096 || n > 1<<30 || n&(n-1) != 0 {
			return strconvErr
		}
		return nil
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := math.MinInt
		if err := Int(&n, 1, 131072, "bytes").Set(s); err != nil {
			oneLine(t, s, err)
			if n != math.MinInt {
				t.Fatalf("%q refused but set %d", s, n)
			}
		} else if n < 1 || n > 131072 {
			t.Fatalf("%q accepted as %d", s, n)
		}
		n = math.MinInt
		if err := Checked(&n, pow2).Set(s); err == nil && pow2(n) != nil {
			t.Fatalf("%q accepted as %d", s, n)
		}
	})
}

var strconvErr = strconv.ErrRange

// TestNetns: a namespace file and its inode give the inode the kernel
// shows for it; other files, unused inodes and unknown names are refused.
func TestNetns(t *testing.T) {
	var st, mnt unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &st); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat("/proc/self/ns/mnt", &mnt); err != nil {
		t.Fatal(err)
	}
	self := strconv.FormatUint(st.Ino, 10)
	for in, want := range map[string]string{
		"/proc/self/ns/net": "", self: "",
		"/proc/self/ns/mnt": "is not a network namespace", "/proc/self/status": "is not a network namespace",
		strconv.FormatUint(mnt.Ino, 10): "no process and no ip netns name has network namespace",
		"0":                             "network namespace 0:", "4294967296": "network namespace 4294967296:",
		"no-such-ns": `"no-such-ns" does not exist`, "/nonexistent/ns": "does not exist",
	} {
		p := uint32(7)
		err := Netns(&p).Set(in)
		if want == "" {
			if err != nil || uint64(p) != st.Ino {
				t.Errorf("netns %q: %v, value %d, want %d", in, err, p, st.Ino)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), want) || p != 7 {
			t.Errorf("netns %q: %v (value %d), want an error with %q", in, err, p, want)
		} else {
			oneLine(t, in, err)
		}
	}
}
