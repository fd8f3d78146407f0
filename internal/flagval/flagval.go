// Package flagval is the one place where the values of bpfkit's shared
// flags are checked: process and thread ids, user ids, durations, sizes,
// row counts. Each type is a pflag.Value that refuses a bad value when the
// flag is parsed, so every command refuses it the same way, before
// anything is loaded, attached or written.
package flagval

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Cut shortens a value echoed in a message to at most 40 bytes.
func Cut(s string) string {
	const max = 40
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}

// Quote is Cut, quoted as Go quotes strings (control bytes escaped).
func Quote(s string) string { return strconv.Quote(Cut(s)) }

// DefaultPIDMax is the largest pid_max Linux allows (PID_MAX_LIMIT on
// 64-bit), used when /proc/sys/kernel/pid_max cannot be read.
const DefaultPIDMax = 4194304

// PIDMax returns this kernel's pid_max: process ids are below it.
func PIDMax() uint64 {
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		return DefaultPIDMax
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
	if err != nil || n == 0 {
		return DefaultPIDMax
	}
	return n
}

// ID is a process or thread id flag: 1 to pid_max-1. Its zero value (the
// default) means "any".
type ID struct {
	p    *uint32
	what string // "process", "thread"
}

// PID is a process id flag stored in *p.
func PID(p *uint32) *ID { return &ID{p, "process"} }

// TID is a thread id flag stored in *p.
func TID(p *uint32) *ID { return &ID{p, "thread"} }

func (v *ID) String() string {
	if *v.p == 0 {
		return ""
	}
	return strconv.FormatUint(uint64(*v.p), 10)
}
func (v *ID) Type() string { return "id" }
func (v *ID) Set(s string) error {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return fmt.Errorf("give a %s id, a number from 1", v.what)
	}
	if n == 0 {
		return fmt.Errorf("%s id 0 is the idle task: give a %s id from 1", v.what, v.what)
	}
	if max := PIDMax(); n >= max {
		return fmt.Errorf("%s id %d is above this kernel's pid_max (%d): no %s has it", v.what, n, max-1, v.what)
	}
	*v.p = uint32(n)
	return nil
}

// UIDValue is a user id flag: 0 to 4294967294 ((uid_t)-1 is no user).
// Unset, *p stays nil: any user.
type UIDValue struct{ p **uint32 }

// UID is a user id flag stored in *p.
func UID(p **uint32) *UIDValue { return &UIDValue{p} }

func (v *UIDValue) String() string {
	if *v.p == nil {
		return ""
	}
	return strconv.FormatUint(uint64(**v.p), 10)
}
func (v *UIDValue) Type() string { return "uid" }
func (v *UIDValue) Set(s string) error {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > 4294967294 {
		return errors.New("give a user id from 0 to 4294967294 (id -u NAME prints it)")
	}
	u := uint32(n)
	*v.p = &u
	return nil
}

// DurationValue is a duration flag that is never negative; 0 means no
// limit where the command's help says so.
type DurationValue struct {
	p        *time.Duration
	positive bool
}

// Duration is a flag for a time limit: 0 (no limit) or more.
func Duration(p *time.Duration) *DurationValue { return &DurationValue{p: p} }

// Interval is a flag for a period: more than 0.
func Interval(p *time.Duration) *DurationValue { return &DurationValue{p: p, positive: true} }

func (v *DurationValue) String() string { return v.p.String() }
func (v *DurationValue) Type() string   { return "duration" }
func (v *DurationValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("give a duration such as 500ms, 10s or 5m")
	}
	if d < 0 || (v.positive && d == 0) {
		if v.positive {
			return errors.New("must be more than 0, e.g. 1s")
		}
		return errors.New("must not be negative (0: no limit)")
	}
	*v.p = d
	return nil
}

// IntValue is a whole number within a range, with a check of its own.
type IntValue struct {
	p        *int
	min, max int
	unit     string // "rows", "bytes", "entries"
	check    func(int) error
}

// Int is a flag for a number from min to max (unit says what it counts).
func Int(p *int, min, max int, unit string) *IntValue {
	return &IntValue{p: p, min: min, max: max, unit: unit}
}

// Checked is a flag for a number that check accepts.
func Checked(p *int, check func(int) error) *IntValue {
	return &IntValue{p: p, check: check}
}

func (v *IntValue) String() string { return strconv.Itoa(*v.p) }
func (v *IntValue) Type() string   { return "int" }
func (v *IntValue) Set(s string) error {
	n, err := strconv.ParseInt(s, 0, 64)
	if v.check != nil {
		if err != nil {
			return errors.New("give a whole number")
		}
		if int64(int(n)) != n {
			return v.check(-1)
		}
		if err := v.check(int(n)); err != nil {
			return err
		}
	} else if err != nil || n < int64(v.min) || n > int64(v.max) {
		return fmt.Errorf("give a number of %s from %d to %d", v.unit, v.min, v.max)
	}
	*v.p = int(n)
	return nil
}
