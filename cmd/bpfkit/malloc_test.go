package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bpfkit/bpfkit/internal/testkit"
)

// mallocRows runs bpfkit malloc -o json -- the static workload with args
// and returns calls and bytes by function.
func mallocRows(t *testing.T, args ...string) map[string][2]uint64 {
	t.Helper()
	bin, err := filepath.Abs("../../pkg/trace/malloc/testdata/workload-static")
	if err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := runBpfkit(t, bpfkit(t, append([]string{"malloc", "-o", "json", "--", bin}, args...)...))
	if code != 0 {
		t.Fatalf("bpfkit malloc: exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "allocator glibc ("+bin+", linked statically into the executable)") {
		t.Errorf("stderr does not name the allocator:\n%s", stderr)
	}
	rows := map[string][2]uint64{}
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		if line == "done" { // the workload's own output
			continue
		}
		var r struct {
			Function, Allocator string
			Calls, Bytes        uint64
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if r.Allocator != "glibc" {
			t.Errorf("%s: allocator %q, want glibc", r.Function, r.Allocator)
		}
		rows[r.Function] = [2]uint64{r.Calls, r.Bytes}
	}
	return rows
}

// TestHostMallocCommand: bpfkit malloc -- COMMAND traces the command from
// its first instruction. Static glibc allocates a few blocks while it
// starts (the same in every run): the run with the pattern less the run
// without it is the pattern, exactly. (Host only: the static workload is
// another package's testdata, not shipped into the VMs, where
// pkg/trace/malloc's TestStatic runs it.)
func TestHostMallocCommand(t *testing.T) {
	testkit.RequireRoot(t)
	base := mallocRows(t, "none")
	full := mallocRows(t)
	want := map[string][2]uint64{
		"malloc":                 {16, 16000},
		"calloc":                 {8, 8000},
		"realloc":                {4, 12000},
		"reallocarray":           {2, 10000},
		"free":                   {16, 0},
		"posix_memalign":         {3, 2100},
		"aligned_alloc/memalign": {11, 8720},
		"valloc":                 {2, 10000},
		"pvalloc":                {0, 0},
	}
	if len(full) != len(want) {
		t.Errorf("functions %v, want %v", full, want)
	}
	for fn, w := range want {
		got := [2]uint64{full[fn][0] - base[fn][0], full[fn][1] - base[fn][1]}
		if got != w {
			t.Errorf("%s: %d calls, %d bytes more than start-up alone; want %d, %d", fn, got[0], got[1], w[0], w[1])
		}
	}
}
