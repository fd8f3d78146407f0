package malloc

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bpfkit/bpfkit/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// The numbers testdata/workload.c's pattern makes, by function: calls and
// bytes asked for.
var pattern = map[string]Row{
	"malloc":         {Calls: 16, Bytes: 16 * 1000},
	"calloc":         {Calls: 8, Bytes: 8 * 4 * 250},
	"realloc":        {Calls: 4, Bytes: 4 * 3000},
	"reallocarray":   {Calls: 2, Bytes: 2 * 10 * 500},
	"free":           {Calls: 16},
	"posix_memalign": {Calls: 3, Bytes: 3 * 700},
	"aligned_alloc":  {Calls: 5, Bytes: 5 * 1024},
	"memalign":       {Calls: 6, Bytes: 6 * 600},
	"valloc":         {Calls: 2, Bytes: 2 * 5000},
	"pvalloc":        {},
	// jemalloc only.
	"mallocx":  {Calls: 3, Bytes: 3 * 2000},
	"rallocx":  {Calls: 1, Bytes: 4000},
	"sdallocx": {Calls: 1, Bytes: 2000},
	"dallocx":  {Calls: 1},
}

const (
	// Bytes free() releases: the calloc blocks, the realloc'd ones, two
	// posix_memalign ones and the valloc ones.
	freedBytes = 8*1000 + 4*3000 + 2*700 + 2*5000
	// Left allocated: 10 malloc x 1000, 2 reallocarray x 5000, 1
	// posix_memalign x 700, 5 aligned_alloc x 1024, 6 memalign x 600;
	// jemalloc: and the rallocx'd block of 4000.
	leftBlocks, leftBytes = 24, 10*1000 + 2*5000 + 700 + 5*1024 + 6*600
)

// A setup is one way of running the workload.
type setup struct {
	bin       string
	preload   string
	allocator string   // its name
	path      string   // its file's base name
	funcs     []string // the rows, in order
	static    bool
}

// expect is the rows the pattern gives under s: a row of aliases (one
// address) adds up its names; reallocarray, where the allocator has
// none, is glibc's, which calls the allocator's realloc.
func (s setup) expect(outstanding bool) []Row {
	var rows []Row
	for _, f := range s.funcs {
		r := Row{Function: f, Allocator: s.allocator}
		for _, name := range strings.Split(f, "/") {
			r.Calls += pattern[name].Calls
			r.Bytes += pattern[name].Bytes
		}
		switch f {
		case "realloc":
			if !slices.Contains(s.funcs, "reallocarray") {
				r.Calls += pattern["reallocarray"].Calls
				r.Bytes += pattern["reallocarray"].Bytes
			}
		case "free":
			if outstanding {
				r.Bytes = freedBytes
			}
		case "dallocx":
			if outstanding {
				r.Bytes = 2000 // the mallocx block it frees
			}
		}
		rows = append(rows, r)
	}
	return rows
}

const debianLibs = "/usr/lib/x86_64-linux-gnu/"

// clang returns the C compiler the tests build the workload with.
func clang(t *testing.T) string {
	p, err := exec.LookPath("clang-19")
	if err != nil {
		testkit.Skip(t, "clang-19 is not installed: run make deps")
	}
	return p
}

// build compiles the workload dynamically linked.
func build(t *testing.T) string {
	bin := filepath.Join(t.TempDir(), "workload")
	out, err := exec.Command(clang(t), "-O1", "-fno-omit-frame-pointer", "-fno-builtin", "-o", bin, "testdata/workload.c").CombinedOutput()
	if err != nil {
		t.Fatalf("build the workload: %v\n%s", err, out)
	}
	return bin
}

func library(t *testing.T, name, pkg string) string {
	p := debianLibs + name
	if _, err := os.Stat(p); err != nil {
		testkit.Skip(t, "%s is missing: install %s (make deps)", p, pkg)
	}
	return p
}

// TestStatic: malloc linked into the executable, found in its own symbol
// table (the committed static workload: it runs in the VMs too).
func TestStatic(t *testing.T) {
	testkit.RequireRoot(t)
	bin, err := filepath.Abs("testdata/workload-static")
	if err != nil {
		t.Fatal(err)
	}
	run(t, setup{bin: bin, allocator: "glibc", path: "workload-static", static: true,
		funcs: []string{"malloc", "calloc", "realloc", "reallocarray", "free", "posix_memalign", "aligned_alloc/memalign", "valloc", "pvalloc"}})
}

// TestStacksApart: the workload's 2048 mallocs of 48 bytes, each from a
// stack of its own, are 2048 stacks of one call and 48 bytes, and 2048
// outstanding blocks of one stack each, none lost. (A stack-trace map,
// BPF_MAP_TYPE_STACK_TRACE, keeps one stack per bucket of its hash: of 16384
// buckets, about 120 of these stacks would find theirs taken and be lost.)
func TestStacksApart(t *testing.T) {
	testkit.RequireRoot(t)
	bin, err := filepath.Abs("testdata/workload-static")
	if err != nil {
		t.Fatal(err)
	}
	const n, size = 2048, 48
	w := startWorkload(t, setup{bin: bin}, "none", "stacks")
	alloc, err := FindPID(w.cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := New(alloc, w.cmd.Process.Pid, Config{Stacks: true, Outstanding: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	w.step(t)
	// ours keeps the stacks that went through stacks_step, each once.
	ours := func(stacks []Stack) map[string]Stack {
		out := map[string]Stack{}
		for _, s := range stacks {
			if slices.Contains(s.Frames, "stacks_step") {
				out[strings.Join(s.Frames, ";")] = s
			}
		}
		return out
	}
	stacks, err := tr.Stacks()
	if err != nil {
		t.Fatal(err)
	}
	outstanding, total, err := tr.Outstanding(0)
	if err != nil {
		t.Fatal(err)
	}
	for what, got := range map[string]map[string]Stack{"allocated": ours(stacks), "outstanding": ours(outstanding)} {
		if len(got) != n {
			t.Errorf("%s: %d stacks through stacks_step, want %d", what, len(got), n)
		}
		for frames, s := range got {
			if s.Calls != 1 || s.Bytes != size || s.Frames[0] != "wl_malloc" {
				t.Errorf("%s: stack %s: %d calls, %d bytes; want 1 call of %d bytes from wl_malloc", what, frames, s.Calls, s.Bytes, size)
				break
			}
		}
	}
	if total.Calls != n || total.Bytes != n*size {
		t.Errorf("outstanding %d blocks, %d bytes; want %d, %d", total.Calls, total.Bytes, n, n*size)
	}
	if h := tr.Health(); h.Lost != 0 {
		t.Errorf("lost %d", h.Lost)
	}
}

// TestHostDynamic builds the workload (the host has the compiler and the
// libraries; the VMs have neither) and runs it under glibc, jemalloc and
// tcmalloc and mimalloc, the last three by LD_PRELOAD.
func TestHostDynamic(t *testing.T) {
	testkit.RequireRoot(t)
	bin := build(t)
	t.Run("glibc", func(t *testing.T) {
		run(t, setup{bin: bin, allocator: "glibc", path: "libc.so.6",
			funcs: []string{"malloc", "calloc", "realloc", "reallocarray", "free", "posix_memalign", "aligned_alloc/memalign", "valloc", "pvalloc"}})
	})
	t.Run("jemalloc", func(t *testing.T) {
		run(t, setup{bin: bin, preload: library(t, "libjemalloc.so.2", "libjemalloc2"), allocator: "jemalloc", path: "libjemalloc.so.2",
			funcs: []string{"malloc", "calloc", "realloc", "free", "posix_memalign", "aligned_alloc", "memalign", "valloc", "mallocx", "rallocx", "sdallocx", "dallocx"}})
	})
	t.Run("tcmalloc", func(t *testing.T) {
		lib := library(t, "libtcmalloc_minimal.so.4", "libtcmalloc-minimal4")
		real, err := filepath.EvalSymlinks(lib) // the file the process maps
		if err != nil {
			t.Fatal(err)
		}
		run(t, setup{bin: bin, preload: lib, allocator: "tcmalloc", path: filepath.Base(real),
			funcs: []string{"malloc", "calloc", "realloc", "free", "posix_memalign", "aligned_alloc/memalign", "valloc", "pvalloc"}})
	})
	// mimalloc also exports __libc_malloc (glibc's name) and mi_malloc at
	// malloc's address: named by mi_malloc.
	t.Run("mimalloc", func(t *testing.T) {
		lib := library(t, "libmimalloc.so.2", "libmimalloc2.0")
		real, err := filepath.EvalSymlinks(lib)
		if err != nil {
			t.Fatal(err)
		}
		run(t, setup{bin: bin, preload: lib, allocator: "mimalloc", path: filepath.Base(real),
			funcs: []string{"malloc", "calloc", "realloc", "reallocarray", "free", "posix_memalign", "aligned_alloc", "memalign", "valloc", "pvalloc"}})
	})
}

// run runs the workload under s twice: counting only, and with sizes,
// outstanding blocks and stacks.
func run(t *testing.T, s setup) {
	for _, cfg := range []Config{{}, {Sizes: true, Outstanding: true, Stacks: true}} {
		w := startWorkload(t, s)
		alloc, err := FindPID(w.cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		if alloc.Name != s.allocator || filepath.Base(alloc.Path) != s.path || alloc.Static != s.static || alloc.Preloaded != (s.preload != "") {
			t.Fatalf("allocator %s (static %v, preloaded %v), want %s in %s (static %v, preloaded %v)",
				alloc, alloc.Static, alloc.Preloaded, s.allocator, s.path, s.static, s.preload != "")
		}
		tr, err := New(alloc, w.cmd.Process.Pid, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		w.step(t) // the pattern
		rows, err := tr.Rows()
		if err != nil {
			t.Fatal(err)
		}
		want := s.expect(cfg.Outstanding)
		if !slices.Equal(rows, want) {
			t.Errorf("%+v: rows\n%v\nwant\n%v", cfg, rows, want)
		}
		if cfg.Sizes {
			checkSizes(t, tr, s.allocator == "jemalloc")
		}
		if cfg.Outstanding {
			blocks, bytes := uint64(leftBlocks), uint64(leftBytes)
			if s.allocator == "jemalloc" {
				blocks, bytes = blocks+1, bytes+4000
			}
			stacks, total, err := tr.Outstanding(0)
			if err != nil {
				t.Fatal(err)
			}
			if total.Calls != blocks || total.Bytes != bytes {
				t.Errorf("outstanding %d blocks, %d bytes; want %d, %d", total.Calls, total.Bytes, blocks, bytes)
			}
			// The malloc'd blocks left (10 x 1000) come from wl_malloc,
			// called by pattern, called by main.
			if !hasStack(stacks, 10*1000, "wl_malloc", "pattern", "main") {
				t.Errorf("no outstanding stack of 10000 bytes through wl_malloc, pattern, main: %v", stacks)
			}
		}
		if cfg.Stacks {
			stacks, err := tr.Stacks()
			if err != nil {
				t.Fatal(err)
			}
			if !hasStack(stacks, 16*1000, "wl_malloc", "pattern", "main") || !hasStack(stacks, 8*1000, "wl_calloc", "pattern", "main") {
				t.Errorf("stacks lack wl_malloc (16000 bytes) or wl_calloc (8000): %v", stacks)
			}
		}
		if h := tr.Health(); h.Lost != 0 {
			t.Errorf("lost %d", h.Lost)
		}
		w.step(t) // exit
		if err := w.cmd.Wait(); err != nil {
			t.Fatalf("workload: %v", err)
		}
		tr.Close()
	}
}

// checkSizes compares the log2 histogram with the pattern's sizes.
func checkSizes(t *testing.T, tr *Tracer, jemalloc bool) {
	t.Helper()
	got, err := tr.Sizes()
	if err != nil {
		t.Fatal(err)
	}
	want := make([]uint64, 64)
	want[9] = 16 + 8 + 3 + 6 // 1000, 4x250, 700, 600: 512 -> 1023
	want[10] = 5             // 1024
	want[11] = 4             // 3000
	want[12] = 2 + 2         // 5000 (reallocarray, valloc)
	if jemalloc {
		want[10] += 3 // mallocx 2000
		want[11]++    // rallocx 4000
	}
	if !slices.Equal(got, want) {
		t.Errorf("sizes %v, want %v", got, want)
	}
}

func hasStack(stacks []Stack, bytes uint64, frames ...string) bool {
	for _, s := range stacks {
		if s.Bytes != bytes {
			continue
		}
		i := 0
		for _, f := range s.Frames {
			if i < len(frames) && f == frames[i] {
				i++
			}
		}
		if i == len(frames) {
			return true
		}
	}
	return false
}

// workload is the running workload, held on its stdin.
type workload struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

func startWorkload(t *testing.T, s setup, args ...string) *workload {
	t.Helper()
	cmd := exec.Command(s.bin, append([]string{"wait", "hold"}, args...)...)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	if s.preload != "" {
		cmd.Env = append(cmd.Env, "LD_PRELOAD="+s.preload)
	}
	cmd.Stderr = os.Stderr
	stdin, out := testkit.StartHeld(t, cmd)
	return &workload{cmd: cmd, stdin: stdin, out: out}
}

// step releases the workload from one read of its stdin; after the
// first, it waits for the pattern's end ("done").
func (w *workload) step(t *testing.T) {
	t.Helper()
	if _, err := w.stdin.Write([]byte{'x'}); err != nil {
		t.Fatal(err)
	}
	if w.out == nil {
		return
	}
	line, err := w.out.ReadString('\n')
	if err != nil || line != "done\n" {
		t.Fatalf("workload said %q: %v", line, err)
	}
	w.out = nil
}
