package vmtest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// TestEvent is one line of `go test -json` / test2json output.
type TestEvent struct {
	Time    time.Time `json:",omitempty"`
	Action  string
	Package string  `json:",omitempty"`
	Test    string  `json:",omitempty"`
	Elapsed float64 `json:",omitempty"`
	Output  string  `json:",omitempty"`
}

// Outcome summarises one package's tests on one kernel.
type Outcome struct {
	Status string   // pass, fail, skip, timeout, vm-error, build-fail, no-run, host-only
	Passed []string // top-level tests that passed and ran something: not only skipped subtests
	Failed []string // top-level tests
	// Skipped lists every test and subtest that skipped ("TestX/sub").
	Skipped []string
	Tests   int // top-level tests that reported a result
	Elapsed float64
	Output  string // complete output text
}

// Failed reports whether the outcome counts as a failure.
func (o *Outcome) IsFailure() bool {
	switch o.Status {
	case "pass", "skip", HostOnly:
		return false
	}
	return true
}

// Cell is the text shown in the compatibility table.
func (o *Outcome) Cell() string {
	switch {
	case o.Status == "pass" && len(o.Skipped) > 0:
		return fmt.Sprintf("pass (%d skipped)", len(o.Skipped))
	case o.Status == "fail" && len(o.Failed) > 0:
		return fmt.Sprintf("FAIL (%d/%d)", len(o.Failed), max(o.Tests, len(o.Failed)+len(o.Passed)))
	case o.IsFailure():
		return strings.ToUpper(o.Status)
	case o.Status == HostOnly:
		return "host only"
	}
	return o.Status
}

// ParseTestJSON reads test2json events for one package and classifies them.
// Non-JSON lines are treated as output.
func ParseTestJSON(r io.Reader) (*Outcome, error) {
	o := &Outcome{}
	var out strings.Builder
	final := ""
	results := map[string]string{} // test or subtest → pass, fail or skip
	var order []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var ev TestEvent
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &ev) != nil {
			out.Write(line)
			out.WriteByte('\n')
			continue
		}
		if ev.Action == "output" {
			out.WriteString(ev.Output)
			continue
		}
		if ev.Test == "" {
			switch ev.Action {
			case "pass", "fail", "skip":
				final = ev.Action
				o.Elapsed = ev.Elapsed
			}
			continue
		}
		switch ev.Action {
		case "pass", "fail", "skip":
			if _, seen := results[ev.Test]; !seen {
				order = append(order, ev.Test)
			}
			results[ev.Test] = ev.Action
		}
	}
	// A test counts as skipped if it skipped, or if it passed with
	// subtests and every one of them counts as skipped: it checked nothing.
	var skipped func(name string) bool
	skipped = func(name string) bool {
		switch results[name] {
		case "skip":
			return true
		case "pass":
			subs := 0
			for _, sub := range order {
				if parent, ok := parentOf(sub); ok && parent == name {
					if !skipped(sub) {
						return false
					}
					subs++
				}
			}
			return subs > 0
		}
		return false
	}
	for _, name := range order {
		if results[name] == "skip" {
			o.Skipped = append(o.Skipped, name)
		}
		if strings.Contains(name, "/") {
			continue
		}
		o.Tests++
		switch {
		case results[name] == "fail":
			o.Failed = append(o.Failed, name)
		case !skipped(name):
			o.Passed = append(o.Passed, name)
		}
	}
	o.Output = out.String()
	switch {
	case final == "fail" || len(o.Failed) > 0:
		o.Status = "fail"
		if strings.Contains(o.Output, "vmrun: timeout") {
			o.Status = "timeout"
		} else if strings.Contains(o.Output, "stopped without reporting an exit status") || (strings.Contains(o.Output, "vmrun: ") && len(o.Failed) == 0 && len(o.Passed) == 0) {
			o.Status = "vm-error"
		}
	case final == "skip":
		o.Status = "skip"
	case final == "pass":
		o.Status = "pass"
		if len(o.Passed) == 0 {
			// Every test skipped, passed with only skipped subtests, or
			// none ran (in a VM, a package of TestHost* tests only).
			o.Status = "skip"
		}
	default:
		o.Status = "no-run"
	}
	return o, sc.Err()
}

// parentOf returns the test a subtest belongs to: "TestX/a" for "TestX/a/b".
func parentOf(name string) (string, bool) {
	i := strings.LastIndexByte(name, '/')
	if i < 0 {
		return "", false
	}
	return name[:i], true
}

// Matrix holds outcomes per kernel column and package row.
type Matrix struct {
	Kernels  []string            // column labels, in order
	Releases map[string]string   // column label → uname -r
	Packages []string            // rows
	Results  map[string]*Outcome // key kernel+"\x00"+package
}

// NewMatrix returns an empty matrix.
func NewMatrix() *Matrix {
	return &Matrix{Releases: map[string]string{}, Results: map[string]*Outcome{}}
}

// Set records an outcome.
func (m *Matrix) Set(kernel, pkg string, o *Outcome) { m.Results[kernel+"\x00"+pkg] = o }

// Get returns an outcome or nil.
func (m *Matrix) Get(kernel, pkg string) *Outcome { return m.Results[kernel+"\x00"+pkg] }

// Failed reports whether any cell failed.
func (m *Matrix) Failed() bool {
	for _, o := range m.Results {
		if o.IsFailure() {
			return true
		}
	}
	return false
}

func (m *Matrix) header(k string) string {
	if r := m.Releases[k]; r != "" && r != k {
		return k + " (" + r + ")"
	}
	return k
}

// Text renders the matrix as an aligned plain-text table.
func (m *Matrix) Text(trim string) string {
	rows := [][]string{append([]string{"package"}, m.Kernels...)}
	for _, p := range m.Packages {
		row := []string{strings.TrimPrefix(p, trim)}
		for _, k := range m.Kernels {
			c := "-"
			if o := m.Get(k, p); o != nil {
				c = o.Cell()
			}
			row = append(row, c)
		}
		rows = append(rows, row)
	}
	width := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], len(c))
		}
	}
	var b strings.Builder
	for _, r := range rows {
		var line strings.Builder
		for i, c := range r {
			fmt.Fprintf(&line, "%-*s  ", width[i], c)
		}
		b.WriteString(strings.TrimRight(line.String(), " ") + "\n")
	}
	var rels []string
	for _, k := range m.Kernels {
		if r := m.Releases[k]; r != "" {
			rels = append(rels, k+"="+r)
		}
	}
	if len(rels) > 0 {
		b.WriteString("kernels: " + strings.Join(rels, " ") + "\n")
	}
	return b.String()
}

// Markdown renders the matrix for docs/compat.md.
func (m *Matrix) Markdown(trim, generated string) string {
	var b strings.Builder
	b.WriteString("# Kernel compatibility\n\n")
	b.WriteString("<!-- Generated by `make vmtest` (vmtest/cmd/vmtest matrix). Do not edit by hand. -->\n\n")
	if generated != "" {
		b.WriteString(generated + "\n\n")
	}
	b.WriteString("Each cell is the result of the package's tests running as root on that kernel ")
	b.WriteString("(Debian `-cloud-amd64` kernels booted in qemu by `vmtest`; `host` is the machine that ran `make vmtest`). ")
	b.WriteString("`pass (N skipped)` means N tests or subtests skipped; `skip` means every test skipped, ran only skipped subtests, or none ran; under `CI=true` skips are failures. ")
	b.WriteString("`host only`: not run in a VM, where it could test nothing that depends on the kernel: the package's tests do not link cilium/ebpf (they load no BPF program), or all of them are benchmarks or `TestHost*` tests (left out in VMs).\n\n")
	b.WriteString("| package |")
	for _, k := range m.Kernels {
		b.WriteString(" " + m.header(k) + " |")
	}
	b.WriteString("\n|---|")
	for range m.Kernels {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, p := range m.Packages {
		fmt.Fprintf(&b, "| `%s` |", strings.TrimPrefix(p, trim))
		for _, k := range m.Kernels {
			c := "-"
			if o := m.Get(k, p); o != nil {
				c = o.Cell()
			}
			b.WriteString(" " + c + " |")
		}
		b.WriteString("\n")
	}
	var notes []string
	for _, p := range m.Packages {
		for _, k := range m.Kernels {
			o := m.Get(k, p)
			if o == nil || (len(o.Failed) == 0 && len(o.Skipped) == 0) {
				continue
			}
			var parts []string
			if len(o.Failed) > 0 {
				parts = append(parts, "failed: "+strings.Join(sorted(o.Failed), ", "))
			}
			if len(o.Skipped) > 0 {
				parts = append(parts, "skipped: "+strings.Join(sorted(o.Skipped), ", "))
			}
			notes = append(notes, fmt.Sprintf("- `%s` on %s: %s", strings.TrimPrefix(p, trim), k, strings.Join(parts, "; ")))
		}
	}
	if len(notes) > 0 {
		b.WriteString("\n## Failed and skipped tests\n\n" + strings.Join(notes, "\n") + "\n")
	}
	return b.String()
}

func sorted(s []string) []string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	return s
}
