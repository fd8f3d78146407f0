package vmtest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDepmod runs the host's depmod on modules copied from the test kernel
// and checks its modules.dep against vmtest's own dependency resolution
// (each module's .modinfo depends=, followed transitively), and that the
// aliases vng asks modprobe for are there.
func TestDepmod(t *testing.T) {
	k := requireVM(t)
	if _, err := lookSbin("depmod"); err != nil {
		skipOrFail(t, "depmod not installed (apt-get install kmod): %v", err)
	}
	idx, err := IndexModules(k.ModDir)
	if err != nil {
		t.Fatal(err)
	}
	// virtiofs and virtio_pci are what vng's initramfs needs on 6.1 (both
	// modules there); veth is what a test's netlink request loads.
	order, _, err := idx.Resolve([]string{"virtiofs", "virtio_pci", "virtio_console", "veth"})
	if err != nil {
		t.Fatal(err)
	}
	if len(order) < 5 {
		t.Fatalf("only %v to copy: %s is not the modular kernel this test expects", order, k.Release)
	}
	base := t.TempDir()
	modDir := filepath.Join(base, "lib/modules", k.Release)
	rel := map[string]string{} // name → path relative to modDir
	for _, n := range order {
		r, err := filepath.Rel(k.ModDir, idx.Files[n])
		if err != nil {
			t.Fatal(err)
		}
		rel[n] = r
		data, err := os.ReadFile(idx.Files[n])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(modDir, r)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(modDir, r), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c := &Cache{Dir: t.TempDir()}
	copyK := &Kernel{Release: k.Release, ModDir: modDir}
	ctx := context.Background()
	if err := c.Depmod(ctx, copyK); err != nil {
		t.Fatal(err)
	}
	deps := readModulesDep(t, filepath.Join(modDir, "modules.dep"))
	if len(deps) != len(order) {
		t.Errorf("modules.dep has %d modules, copied %d: %v", len(deps), len(order), deps)
	}
	var closure func(n string, into map[string]bool)
	closure = func(n string, into map[string]bool) {
		ds, err := idx.Depends(n)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if !into[rel[d]] {
				into[rel[d]] = true
				closure(d, into)
			}
		}
	}
	for _, n := range order {
		want := map[string]bool{}
		closure(n, want)
		got := map[string]bool{}
		for _, d := range deps[rel[n]] {
			got[d] = true
		}
		if len(got) != len(want) {
			t.Errorf("%s: depmod says %v, .modinfo says %v", n, deps[rel[n]], want)
			continue
		}
		for d := range want {
			if !got[d] {
				t.Errorf("%s: depmod lacks %s (has %v)", n, d, deps[rel[n]])
			}
		}
	}
	alias, err := os.ReadFile(filepath.Join(modDir, "modules.alias"))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"alias fs-virtiofs virtiofs", "alias rtnl-link-veth veth"} {
		if !strings.Contains(string(alias), a+"\n") {
			t.Errorf("modules.alias lacks %q", a)
		}
	}
	// Once per kernel: a second call leaves the files alone.
	st1, _ := os.Stat(filepath.Join(modDir, "modules.dep.bin"))
	time.Sleep(10 * time.Millisecond)
	if err := c.Depmod(ctx, copyK); err != nil {
		t.Fatal(err)
	}
	st2, _ := os.Stat(filepath.Join(modDir, "modules.dep.bin"))
	if !st1.ModTime().Equal(st2.ModTime()) {
		t.Errorf("second Depmod rewrote modules.dep.bin")
	}
}

// readModulesDep parses modules.dep: "path: dep dep ..." per line.
func readModulesDep(t *testing.T, p string) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		mod, ds, ok := strings.Cut(line, ":")
		if !ok {
			t.Fatalf("bad modules.dep line %q", line)
		}
		out[mod] = strings.Fields(ds)
	}
	return out
}

// TestVirtiofsdDir checks that vng gets a virtiofsd it can use: the host's
// Rust daemon, or Debian's unpacked into the cache, which must run here.
func TestVirtiofsdDir(t *testing.T) {
	requireVM(t) // root, and the cache's apt set-up works
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir, err := NewCache("").VirtiofsdDir(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p := HostVirtiofsd()
	if dir != "" {
		p = filepath.Join(dir, "virtiofsd")
	}
	out, err := exec.Command(p, "--version").CombinedOutput()
	if err != nil || !isRustVirtiofsd(string(out)) {
		t.Fatalf("%s --version: %v: %s", p, err, out)
	}
	t.Logf("%s: %s", p, strings.TrimSpace(string(out)))
	// What vng looks for first in $PATH is that daemon, not qemu's C one.
	if dir != "" {
		path := dir + string(os.PathListSeparator) + os.Getenv("PATH")
		cmd := exec.Command("sh", "-c", "command -v virtiofsd")
		cmd.Env = append(os.Environ(), "PATH="+path)
		got, err := cmd.Output()
		if err != nil || strings.TrimSpace(string(got)) != p {
			t.Errorf("virtiofsd in PATH %s = %q (%v), want %s", path, got, err, p)
		}
	}
}
