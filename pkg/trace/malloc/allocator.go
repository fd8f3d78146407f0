package malloc

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// A Func is one traced entry point of an allocator: the functions of the
// API that share its address (glibc's aligned_alloc and memalign are one
// function), by the first of them.
type Func struct {
	Name   string // "malloc"; aliases joined by "/": "aligned_alloc/memalign"
	fn     mallocMallocFn
	Offset uint64 // file offset of the code
}

// An Allocator is the object that serves a process's malloc.
type Allocator struct {
	Name      string // glibc, jemalloc, tcmalloc, mimalloc, or the file's name
	Path      string // the file as the process names it
	Static    bool   // malloc is linked into the executable
	Preloaded bool   // brought in by LD_PRELOAD
	Exe       string // the executable it serves
	Funcs     []Func
	open      string // the path to open it by (through /proc/PID/root)
}

// String says which allocator it is and where, for stderr.
func (a *Allocator) String() string {
	s := a.Name + " (" + a.Path
	switch {
	case a.Static:
		s += ", linked statically into the executable"
	case a.Preloaded:
		s += ", by LD_PRELOAD"
	}
	return s + ")"
}

type apiFunc struct {
	name string
	fn   mallocMallocFn
}

// api is every function traced, in the order rows are shown; the first of
// several names at one address names the row's program.
var api = []apiFunc{
	{"malloc", mallocMallocFnMALLOC_FN_MALLOC},
	{"calloc", mallocMallocFnMALLOC_FN_CALLOC},
	{"realloc", mallocMallocFnMALLOC_FN_REALLOC},
	{"reallocarray", mallocMallocFnMALLOC_FN_REALLOCARRAY},
	{"free", mallocMallocFnMALLOC_FN_FREE},
	{"posix_memalign", mallocMallocFnMALLOC_FN_POSIX_MEMALIGN},
	{"aligned_alloc", mallocMallocFnMALLOC_FN_ALIGNED_ALLOC},
	{"memalign", mallocMallocFnMALLOC_FN_MEMALIGN},
	{"valloc", mallocMallocFnMALLOC_FN_VALLOC},
	{"pvalloc", mallocMallocFnMALLOC_FN_PVALLOC},
	{"mallocx", mallocMallocFnMALLOC_FN_MALLOCX},
	{"rallocx", mallocMallocFnMALLOC_FN_RALLOCX},
	{"sdallocx", mallocMallocFnMALLOC_FN_SDALLOCX},
	{"dallocx", mallocMallocFnMALLOC_FN_DALLOCX},
}

// programs are the BPF programs of a function: entry and, for functions
// that return a block, return.
func programs(fn mallocMallocFn) (enter, ret string) {
	name := api[slices.IndexFunc(api, func(a apiFunc) bool { return a.fn == fn })].name
	switch fn {
	case mallocMallocFnMALLOC_FN_FREE, mallocMallocFnMALLOC_FN_SDALLOCX, mallocMallocFnMALLOC_FN_DALLOCX:
		return name + "_enter", ""
	}
	return name + "_enter", name + "_return"
}

// FindPID finds the allocator serving process pid, from its mappings,
// its environment's LD_PRELOAD and the symbol tables of the files.
func FindPID(pid int) (*Allocator, error) {
	root := fmt.Sprintf("/proc/%d/root", pid)
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		if _, serr := os.Stat(fmt.Sprintf("/proc/%d", pid)); errors.Is(serr, os.ErrNotExist) {
			return nil, fmt.Errorf("process %d does not exist: give the pid of a running process", pid)
		}
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("process %d has no executable (a kernel thread): give a user process", pid)
		}
		return nil, fmt.Errorf("process %d: %w", pid, err)
	}
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return nil, fmt.Errorf("process %d: %w", pid, err)
	}
	var mapped []string
	sc := bufio.NewScanner(bytes.NewReader(maps))
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) >= 6 && strings.HasPrefix(fs[5], "/") && !slices.Contains(mapped, fs[5]) {
			mapped = append(mapped, fs[5])
		}
	}
	if len(mapped) == 0 {
		return nil, fmt.Errorf("process %d maps no files (a kernel thread?): give a user process", pid)
	}
	env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	var preload []string
	for _, kv := range bytes.Split(env, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("LD_PRELOAD=")); ok {
			preload = strings.FieldsFunc(string(v), func(r rune) bool { return r == ':' || r == ' ' })
		}
	}
	// The dynamic loader's lookup order: the executable, the preloaded
	// libraries, then the others.
	order := []string{exe}
	isPreload := map[string]bool{}
	for _, p := range preload {
		// LD_PRELOAD may name a symbolic link (libfoo.so.4), the maps
		// show the file (libfoo.so.4.5.10).
		real, err := filepath.EvalSymlinks(root + p)
		if err != nil || !strings.HasPrefix(p, "/") {
			real = ""
		}
		for _, m := range mapped {
			if (m == p || m == real || root+m == real || filepath.Base(m) == filepath.Base(p)) && !slices.Contains(order, m) {
				order = append(order, m)
				isPreload[m] = true
			}
		}
	}
	// Of the rest, a library that replaces glibc's malloc comes before
	// glibc (it is linked before libc, which is always last).
	var libc []string
	for _, m := range mapped {
		if slices.Contains(order, m) {
			continue
		}
		if strings.HasPrefix(filepath.Base(m), "libc.so") || strings.HasPrefix(filepath.Base(m), "libc-") {
			libc = append(libc, m)
			continue
		}
		order = append(order, m)
	}
	order = append(order, libc...)
	return pick(order, isPreload, func(p string) string { return root + p })
}

// FindCommand finds the allocator that executable path will use when run
// with env: from its symbol table if it is static, else from the
// libraries its dynamic loader lists for it (ld.so --list, which loads
// nothing and runs none of the program).
func FindCommand(path string, env []string) (*Allocator, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var interp string
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b := make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err == nil {
				interp = string(bytes.TrimRight(b, "\x00"))
			}
		}
	}
	f.Close()
	order := []string{path}
	isPreload := map[string]bool{}
	if interp != "" {
		cmd := exec.Command(interp, "--list", path)
		cmd.Env = env
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("list the libraries of %s (%s --list): %w", path, interp, err)
		}
		var preload []string
		for _, kv := range env {
			if v, ok := strings.CutPrefix(kv, "LD_PRELOAD="); ok {
				preload = strings.FieldsFunc(v, func(r rune) bool { return r == ':' || r == ' ' })
			}
		}
		// "\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or
		// "\t/lib64/ld-linux-x86-64.so.2 (0x...)": preloads come first.
		for _, line := range strings.Split(string(out), "\n") {
			line = strings.TrimSpace(line)
			if _, lib, ok := strings.Cut(line, "=> "); ok {
				line = lib
			}
			lib, _, _ := strings.Cut(line, " (")
			if !strings.HasPrefix(lib, "/") {
				continue
			}
			order = append(order, lib)
			for _, p := range preload {
				if p == lib || filepath.Base(p) == filepath.Base(lib) {
					isPreload[lib] = true
				}
			}
		}
	}
	return pick(order, isPreload, func(p string) string { return p })
}

// pick returns the first file of order that defines malloc.
func pick(order []string, isPreload map[string]bool, open func(string) string) (*Allocator, error) {
	for i, path := range order {
		a, err := readAllocator(open(path), i == 0)
		if err != nil {
			if i == 0 {
				return nil, err
			}
			continue
		}
		if a == nil {
			continue
		}
		a.Path, a.Preloaded, a.Exe = path, isPreload[path], order[0]
		return a, nil
	}
	return nil, fmt.Errorf("no allocator found: none of %s defines malloc", strings.Join(order, ", "))
}

// readAllocator reads the allocation API a file defines; nil if it
// defines no malloc. exe is the executable: its own symbol table counts
// when it has no dynamic loader (static).
func readAllocator(path string, exe bool) (*Allocator, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer f.Close()
	static := true
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			static = false
		}
	}
	var syms []elf.Symbol
	if exe && static {
		syms, _ = f.Symbols()
	} else {
		syms, _ = f.DynamicSymbols()
	}
	byName := map[string]elf.Symbol{}
	for _, s := range syms {
		t := elf.ST_TYPE(s.Info)
		if s.Section == elf.SHN_UNDEF || s.Value == 0 || (t != elf.STT_FUNC && t != elf.STT_GNU_IFUNC) {
			continue
		}
		if elf.ST_BIND(s.Info) == elf.STB_LOCAL {
			continue
		}
		name, _, _ := strings.Cut(s.Name, "@")
		if _, ok := byName[name]; !ok {
			byName[name] = s
		}
	}
	if _, ok := byName["malloc"]; !ok {
		return nil, nil
	}
	a := &Allocator{Static: exe && static, open: path}
	switch {
	case has(byName, "mallocx", "je_malloc_conf", "malloc_stats_print"):
		a.Name = "jemalloc"
	case has(byName, "tc_malloc"):
		a.Name = "tcmalloc"
	case has(byName, "mi_malloc"):
		a.Name = "mimalloc"
	case has(byName, "__libc_malloc"), has(byName, "gnu_get_libc_version"):
		a.Name = "glibc"
	default:
		a.Name = filepath.Base(path)
	}
	at := map[uint64]int{} // address -> index in Funcs
	for _, fn := range api {
		s, ok := byName[fn.name]
		if !ok {
			continue
		}
		if i, ok := at[s.Value]; ok {
			a.Funcs[i].Name += "/" + fn.name
			continue
		}
		off, ok := fileOffset(f, s.Value)
		if !ok {
			continue
		}
		at[s.Value] = len(a.Funcs)
		a.Funcs = append(a.Funcs, Func{Name: fn.name, fn: fn.fn, Offset: off})
	}
	return a, nil
}

func has(syms map[string]elf.Symbol, names ...string) bool {
	for _, n := range names {
		if _, ok := syms[n]; ok {
			return true
		}
	}
	return false
}

// fileOffset turns a symbol's address into the offset in the file that
// the uprobe is placed at.
func fileOffset(f *elf.File, addr uint64) (uint64, bool) {
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 && addr >= p.Vaddr && addr < p.Vaddr+p.Memsz {
			return addr - p.Vaddr + p.Off, true
		}
	}
	return 0, false
}

// FindExec finds the allocator of process pid as it starts a new program
// (stopped at its exec: the dynamic loader has mapped nothing yet), the
// way FindCommand does, from its executable and environment.
func FindExec(pid int) (*Allocator, error) {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return nil, fmt.Errorf("process %d: %w", pid, err)
	}
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return nil, fmt.Errorf("process %d: %w", pid, err)
	}
	open := fmt.Sprintf("/proc/%d/exe", pid) // the file, even from another mount namespace
	a, err := FindCommand(open, strings.Split(strings.TrimRight(string(env), "\x00"), "\x00"))
	if err != nil {
		return nil, err
	}
	if a.Path == open {
		a.Path = exe
	}
	a.Exe = exe
	return a, nil
}
