// Package symbol turns instruction addresses from stack traces into
// function names: kernel addresses with /proc/kallsyms, user addresses with
// the ELF symbol tables of the files a process maps (/proc/PID/maps).
package symbol

import (
	"bufio"
	"cmp"
	"debug/elf"
	"debug/gosym"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// sym is a function's start address and name; size 0 is unknown.
type sym struct {
	addr, size uint64
	name       string
}

func byAddr(a, b sym) int { return cmp.Compare(a.addr, b.addr) }

// table is symbols sorted by address.
type table []sym

// find returns the symbol covering addr and the offset into it.
func (t table) find(addr uint64) (sym, uint64, bool) {
	i, _ := slices.BinarySearchFunc(t, addr, func(s sym, a uint64) int { return cmp.Compare(s.addr, a) })
	// i is the first symbol >= addr: take it if equal, else the one before.
	if i < len(t) && t[i].addr == addr {
		return t[i], 0, true
	}
	if i == 0 {
		return sym{}, 0, false
	}
	s := t[i-1]
	if s.size != 0 && addr >= s.addr+s.size {
		return sym{}, 0, false
	}
	return s, addr - s.addr, true
}

// Kernel resolves kernel addresses with /proc/kallsyms.
type Kernel struct{ syms table }

// NewKernel reads /proc/kallsyms (its addresses are zero without root or
// CAP_SYSLOG).
func NewKernel() (*Kernel, error) {
	f, err := os.Open("/proc/kallsyms")
	if err != nil {
		return nil, fmt.Errorf("read kernel symbols: %w", err)
	}
	defer f.Close()
	var t table
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "ffffffff81000000 T _stext [module]"
		line := sc.Text()
		a, rest, ok := strings.Cut(line, " ")
		if !ok || len(rest) < 3 {
			continue
		}
		switch rest[0] {
		case 't', 'T', 'w', 'W':
		default:
			continue
		}
		addr, err := strconv.ParseUint(a, 16, 64)
		if err != nil || addr == 0 {
			continue
		}
		name := rest[2:]
		if i := strings.IndexByte(name, '\t'); i >= 0 {
			name = name[:i]
		}
		t = append(t, sym{addr: addr, name: name})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read kernel symbols: %w", err)
	}
	if len(t) == 0 {
		return nil, errors.New("/proc/kallsyms shows no addresses: run as root (or with CAP_SYSLOG)")
	}
	slices.SortFunc(t, byAddr)
	return &Kernel{syms: t}, nil
}

// Name is the function at addr, or its address in hex.
func (k *Kernel) Name(addr uint64) string {
	if s, _, ok := k.syms.find(addr); ok {
		return s.name
	}
	return "0x" + strconv.FormatUint(addr, 16)
}

// mapping is an executable file mapping of a process.
type mapping struct {
	start, end, off uint64
	path            string
}

// elfFile is what is needed of a mapped ELF file.
type elfFile struct {
	syms  table
	loads []elf.ProgHeader
	gosym *gosym.Table // Go binaries (.gopclntab), tried first
}

// name is the function at vaddr.
func (f *elfFile) name(vaddr uint64) (string, bool) {
	if f.gosym != nil {
		if fn := f.gosym.PCToFunc(vaddr); fn != nil {
			return fn.Name, true
		}
	}
	if s, _, ok := f.syms.find(vaddr); ok {
		return s.name, true
	}
	return "", false
}

// User resolves user addresses of processes by the symbol tables of the
// files they map. It caches processes and files; make one per report.
type User struct {
	procs map[uint32][]mapping
	files map[string]*elfFile
}

// NewUser returns an empty user-space symbolizer.
func NewUser() *User {
	return &User{procs: map[uint32][]mapping{}, files: map[string]*elfFile{}}
}

// Name is the function at addr in process pid as "name", or, when the
// file has no symbol for it, "[file+0xoff]", or the address in hex when
// the process is gone or the address is not in a mapped file.
func (u *User) Name(pid uint32, addr uint64) string {
	maps, ok := u.procs[pid]
	if !ok {
		maps = readMaps(pid)
		u.procs[pid] = maps
	}
	for _, m := range maps {
		if addr < m.start || addr >= m.end {
			continue
		}
		fileOff := addr - m.start + m.off
		f := u.file(pid, m.path)
		if f != nil {
			for _, p := range f.loads {
				if fileOff >= p.Off && fileOff < p.Off+p.Filesz {
					if name, ok := f.name(fileOff - p.Off + p.Vaddr); ok {
						return name
					}
				}
			}
		}
		return "[" + m.path + "+0x" + strconv.FormatUint(fileOff, 16) + "]"
	}
	return "0x" + strconv.FormatUint(addr, 16)
}

// Remember reads the mappings and symbol tables of process pid now, so
// that its addresses still resolve after it exits (when /proc/PID is
// gone). A process already gone keeps what was remembered before.
func (u *User) Remember(pid uint32) {
	maps := readMaps(pid)
	if len(maps) == 0 {
		return
	}
	u.procs[pid] = maps
	for _, m := range maps {
		u.file(pid, m.path)
	}
}

// readMaps returns the executable file mappings of a process.
func readMaps(pid uint32) []mapping {
	f, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []mapping
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "00400000-00452000 r-xp 00000000 08:02 173521 /usr/bin/dbus-daemon"
		fs := strings.Fields(sc.Text())
		if len(fs) < 6 || len(fs[1]) < 3 || fs[1][2] != 'x' || !strings.HasPrefix(fs[5], "/") {
			continue
		}
		lo, hi, _ := strings.Cut(fs[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		off, err3 := strconv.ParseUint(fs[2], 16, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		out = append(out, mapping{start: start, end: end, off: off, path: strings.Join(fs[5:], " ")})
	}
	return out
}

// file loads (once) the symbols of a mapped file, opened through the
// process's root so that containers resolve too.
func (u *User) file(pid uint32, path string) *elfFile {
	key := fmt.Sprintf("%d:%s", pid, path)
	if f, ok := u.files[key]; ok {
		return f
	}
	var ef *elfFile
	e, err := elf.Open(fmt.Sprintf("/proc/%d/root%s", pid, path))
	if err == nil {
		defer e.Close()
		ef = &elfFile{}
		for _, p := range e.Progs {
			if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 {
				ef.loads = append(ef.loads, p.ProgHeader)
			}
		}
		for _, get := range []func() ([]elf.Symbol, error){e.Symbols, e.DynamicSymbols} {
			syms, _ := get()
			for _, s := range syms {
				if elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Value != 0 {
					ef.syms = append(ef.syms, sym{addr: s.Value, size: s.Size, name: s.Name})
				}
			}
		}
		slices.SortFunc(ef.syms, byAddr)
		ef.syms = slices.CompactFunc(ef.syms, func(a, b sym) bool { return a.addr == b.addr })
		// Go binaries: the runtime's own function table names every Go
		// function, whatever the symbol table holds (it may be stripped,
		// or hold only the few C or assembly symbols of a dependency).
		ef.gosym = goTable(e)
	}
	u.files[key] = ef
	return ef
}

// goTable reads the function table every Go binary keeps for its runtime
// (.gopclntab), which is there even when the symbol table is stripped.
func goTable(e *elf.File) *gosym.Table {
	pcln, text := e.Section(".gopclntab"), e.Section(".text")
	if pcln == nil || text == nil {
		return nil
	}
	data, err := pcln.Data()
	if err != nil {
		return nil
	}
	t, err := gosym.NewTable(nil, gosym.NewLineTable(data, text.Addr))
	if err != nil {
		return nil
	}
	return t
}
