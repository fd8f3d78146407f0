package vmtest

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// DefaultModules are loaded into every VM if the kernel has them as modules.
// Override with $VMTEST_MODULES (comma separated) or vmrun -modules.
var DefaultModules = []string{"veth", "dummy", "sch_ingress", "cls_bpf", "act_bpf", "loop", "mq_deadline", "nf_tables", "nft_quota"}

// Module is a kernel module file found on the host.
type Module struct {
	Name string // normalised name (dashes become underscores)
	Path string // host path, possibly .ko.xz or .ko.zst
}

// ModuleName normalises a module name or file name: "sch-ingress.ko.xz" →
// "sch_ingress".
func ModuleName(s string) string {
	s = filepath.Base(s)
	for _, ext := range []string{".xz", ".zst", ".gz", ".ko"} {
		s = strings.TrimSuffix(s, ext)
	}
	return strings.ReplaceAll(s, "-", "_")
}

// ModuleIndex lists the modules of a kernel.
type ModuleIndex struct {
	Dir     string
	Files   map[string]string // name → host path
	Builtin map[string]bool
	data    map[string][]byte // decompressed content cache
}

// IndexModules scans modDir (lib/modules/RELEASE).
func IndexModules(modDir string) (*ModuleIndex, error) {
	idx := &ModuleIndex{Dir: modDir, Files: map[string]string{}, Builtin: map[string]bool{}, data: map[string][]byte{}}
	if modDir == "" {
		return idx, nil
	}
	err := filepath.WalkDir(filepath.Join(modDir, "kernel"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.Contains(d.Name(), ".ko") {
			idx.Files[ModuleName(d.Name())] = p
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if b, err := os.ReadFile(filepath.Join(modDir, "modules.builtin")); err == nil {
		for _, l := range strings.Fields(string(b)) {
			idx.Builtin[ModuleName(l)] = true
		}
	}
	return idx, nil
}

// Content returns the uncompressed module file.
func (idx *ModuleIndex) Content(name string) ([]byte, error) {
	if d, ok := idx.data[name]; ok {
		return d, nil
	}
	p, ok := idx.Files[name]
	if !ok {
		return nil, fmt.Errorf("module %s not found", name)
	}
	d, err := ReadModuleFile(p)
	if err != nil {
		return nil, err
	}
	idx.data[name] = d
	return d, nil
}

// ReadModuleFile reads a module, decompressing .xz / .zst / .gz with the host's
// xz, zstd or gzip tool.
func ReadModuleFile(p string) ([]byte, error) {
	var tool string
	switch {
	case strings.HasSuffix(p, ".xz"):
		tool = "xz"
	case strings.HasSuffix(p, ".zst"):
		tool = "zstd"
	case strings.HasSuffix(p, ".gz"):
		tool = "gzip"
	default:
		return os.ReadFile(p)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(tool, "-dc", p)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s -dc %s: %v %s (install xz-utils / zstd)", tool, p, err, stderr.String())
	}
	return out, nil
}

// ModInfo parses the .modinfo section of an ELF kernel module.
func ModInfo(ko []byte) (map[string][]string, error) {
	f, err := elf.NewFile(bytes.NewReader(ko))
	if err != nil {
		return nil, err
	}
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("no .modinfo section")
	}
	data, err := sec.Data()
	if err != nil {
		return nil, err
	}
	info := map[string][]string{}
	for _, kv := range bytes.Split(data, []byte{0}) {
		k, v, ok := strings.Cut(string(kv), "=")
		if ok {
			info[k] = append(info[k], v)
		}
	}
	return info, nil
}

// Depends returns the module's direct dependencies.
func (idx *ModuleIndex) Depends(name string) ([]string, error) {
	ko, err := idx.Content(name)
	if err != nil {
		return nil, err
	}
	info, err := ModInfo(ko)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var deps []string
	for _, d := range info["depends"] {
		for _, n := range strings.Split(d, ",") {
			if n = strings.TrimSpace(n); n != "" {
				deps = append(deps, ModuleName(n))
			}
		}
	}
	return deps, nil
}

// Resolve returns the modules needed for names, dependencies first. Names that
// are built into the kernel are dropped; names that are neither modules nor
// built in are returned in missing (they may simply not exist in this
// kernel, e.g. netkit before 6.7).
func (idx *ModuleIndex) Resolve(names []string) (order []string, missing []string, err error) {
	return resolveModules(names, func(n string) (bool, bool) { _, ok := idx.Files[n]; return ok, idx.Builtin[n] }, idx.Depends)
}

func resolveModules(names []string, lookup func(string) (isModule, builtin bool), depends func(string) ([]string, error)) (order, missing []string, err error) {
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(n string, chain []string) error
	visit = func(n string, chain []string) error {
		n = ModuleName(n)
		switch state[n] {
		case 1:
			return fmt.Errorf("module dependency cycle: %s -> %s", strings.Join(chain, " -> "), n)
		case 2:
			return nil
		}
		isMod, builtin := lookup(n)
		if !isMod {
			state[n] = 2
			if !builtin {
				missing = append(missing, n)
			}
			return nil
		}
		state[n] = 1
		deps, err := depends(n)
		if err != nil {
			return err
		}
		for _, d := range deps {
			if err := visit(d, append(chain, n)); err != nil {
				return err
			}
		}
		state[n] = 2
		order = append(order, n)
		return nil
	}
	for _, n := range names {
		if err := visit(n, nil); err != nil {
			return nil, nil, err
		}
	}
	return order, missing, nil
}
