package vmtest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultKernels are the kernels `make vmtest` covers: Debian bullseye (5.10),
// bookworm (6.1), trixie/bookworm-backports (6.12) and whatever sid has (7.x).
var DefaultKernels = []string{"5.10", "6.1", "6.12", "7"}

// Suites are the Debian suites searched for kernels.
var Suites = []string{"bullseye", "bookworm", "bookworm-updates", "bookworm-backports", "trixie", "trixie-updates", "sid"}

const (
	markerFile     = ".vmtest-ok"
	defaultMirror  = "http://deb.debian.org/debian"
	debianKeyring  = "/usr/share/keyrings/debian-archive-keyring.gpg"
	aptListsMaxAge = 24 * time.Hour
)

// Cache is the vmtest cache directory (.vmtest/ at the module root).
type Cache struct {
	Dir    string
	Flavor string    // Debian kernel flavour, default "cloud-amd64"
	Log    io.Writer // progress messages; nil means os.Stderr
}

// DefaultCacheDir returns $VMTEST_CACHE, or .vmtest in the root of the main
// module (found by walking up from the working directory, then from this
// source file), or the user cache directory.
func DefaultCacheDir() string {
	if d := os.Getenv("VMTEST_CACHE"); d != "" {
		return d
	}
	if root := ModuleRoot(); root != "" {
		return filepath.Join(root, ".vmtest")
	}
	d, err := os.UserCacheDir()
	if err != nil {
		d = os.TempDir()
	}
	return filepath.Join(d, "bpfkit-vmtest")
}

// ModulePath is the import path of the module vmtest lives in.
const ModulePath = "github.com/bpfkit/bpfkit"

// ModuleRoot returns the directory of the bpfkit module, or "".
func ModuleRoot() string {
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		starts = append(starts, filepath.Dir(file))
	}
	for _, dir := range starts {
		for {
			if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
				regexp.MustCompile(`(?m)^module\s+`+regexp.QuoteMeta(ModulePath)+`\s*$`).Match(data) {
				return dir
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return ""
}

// NewCache returns the cache in dir (DefaultCacheDir if empty).
func NewCache(dir string) *Cache {
	if dir == "" {
		dir = DefaultCacheDir()
	}
	flavor := os.Getenv("VMTEST_FLAVOR")
	if flavor == "" {
		flavor = "cloud-amd64"
	}
	return &Cache{Dir: dir, Flavor: flavor}
}

func (c *Cache) logf(format string, args ...any) {
	w := c.Log
	if w == nil {
		w = os.Stderr
	}
	fmt.Fprintf(w, "vmtest: "+format+"\n", args...)
}

func (c *Cache) kernelsDir() string { return filepath.Join(c.Dir, "kernels") }

// Local returns the kernels already unpacked in the cache.
func (c *Cache) Local() []*Kernel {
	entries, _ := os.ReadDir(c.kernelsDir())
	var ks []*Kernel
	for _, e := range entries {
		root := filepath.Join(c.kernelsDir(), e.Name())
		if !e.IsDir() || !isFile(filepath.Join(root, markerFile)) {
			continue
		}
		if k, err := FindKernel(root); err == nil {
			ks = append(ks, k)
		}
	}
	sort.Slice(ks, func(i, j int) bool { return VersionLess(ks[i].Release, ks[j].Release) })
	return ks
}

// LocalMatch returns the newest cached kernel matching spec, or nil.
func (c *Cache) LocalMatch(spec string) *Kernel {
	var best *Kernel
	for _, k := range c.Local() {
		if MatchVersion(spec, k.Release) {
			best = k
		}
	}
	return best
}

// Resolve turns a -kernel argument into a Kernel: a path to a kernel image, a
// path to an unpacked package tree, or a version prefix ("6.1") which is
// looked up in the cache and fetched from Debian if missing (unless
// VMTEST_OFFLINE=1).
func (c *Cache) Resolve(ctx context.Context, spec string) (*Kernel, error) {
	if st, err := os.Stat(spec); err == nil {
		if st.IsDir() {
			return FindKernel(spec)
		}
		return KernelFromImage(spec), nil
	}
	if strings.ContainsRune(spec, '/') {
		return nil, fmt.Errorf("kernel %s does not exist", spec)
	}
	if k := c.LocalMatch(spec); k != nil {
		return k, nil
	}
	if os.Getenv("VMTEST_OFFLINE") == "1" {
		return nil, fmt.Errorf("kernel %s not in %s and VMTEST_OFFLINE=1", spec, c.kernelsDir())
	}
	return c.Fetch(ctx, spec, false)
}

func (c *Cache) lock() (func(), error) {
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(c.Dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
}

// Fetch downloads the newest kernel matching spec from the Debian mirror and
// unpacks it into the cache. With update, the package lists are refreshed
// even if they are recent; an already unpacked kernel is not downloaded again.
func (c *Cache) Fetch(ctx context.Context, spec string, update bool) (*Kernel, error) {
	unlock, err := c.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if !update {
		// Another process may have fetched it while we waited for the lock.
		if k := c.LocalMatch(spec); k != nil {
			return k, nil
		}
	}
	apt, err := c.apt(ctx, update)
	if err != nil {
		return nil, err
	}
	names, err := apt.pkgnames(ctx, "linux-")
	if err != nil {
		return nil, err
	}
	cand := KernelCandidates(names, c.Flavor)
	rel, pkgs := PickKernel(cand, spec)
	if rel == "" {
		return nil, fmt.Errorf("no Debian kernel matching %q (flavour %s) in suites %s", spec, c.Flavor, strings.Join(Suites, " "))
	}
	root := filepath.Join(c.kernelsDir(), rel)
	if isFile(filepath.Join(root, markerFile)) {
		return FindKernel(root)
	}
	c.logf("fetching kernel %s (%s)", rel, strings.Join(pkgs, " "))
	tmp := root + ".tmp"
	if err := c.unpackDebs(ctx, apt, pkgs, tmp); err != nil {
		return nil, err
	}
	os.RemoveAll(filepath.Join(tmp, "usr/share/doc"))
	if err := os.WriteFile(filepath.Join(tmp, markerFile), []byte(strings.Join(pkgs, "\n")+"\n"), 0o644); err != nil {
		return nil, err
	}
	os.RemoveAll(root)
	if err := os.Rename(tmp, root); err != nil {
		return nil, err
	}
	k, err := FindKernel(root)
	if err != nil {
		return nil, err
	}
	c.logf("kernel %s ready in %s", k.Release, root)
	return k, nil
}

// KernelCandidates maps each kernel release found in names (Debian package
// names) to the packages needed to boot it. Newer Debian (sid) splits the
// kernel into linux-binary-, linux-modules- and linux-base-; older ones ship
// everything in linux-image-.
func KernelCandidates(names []string, flavor string) map[string][]string {
	re := regexp.MustCompile(`^linux-(image|binary|modules|base)-(\d+\.\d+\S*-` + regexp.QuoteMeta(flavor) + `)$`)
	have := map[string]map[string]bool{}
	for _, n := range names {
		m := re.FindStringSubmatch(strings.TrimSpace(n))
		if m == nil {
			continue
		}
		if have[m[2]] == nil {
			have[m[2]] = map[string]bool{}
		}
		have[m[2]][m[1]] = true
	}
	out := map[string][]string{}
	for rel, kinds := range have {
		switch {
		case kinds["binary"] && kinds["modules"] && kinds["base"]:
			out[rel] = []string{"linux-binary-" + rel, "linux-modules-" + rel, "linux-base-" + rel}
		case kinds["image"] && !kinds["binary"]:
			out[rel] = []string{"linux-image-" + rel}
		}
	}
	return out
}

// PickKernel returns the newest release in cand matching spec.
func PickKernel(cand map[string][]string, spec string) (string, []string) {
	best := ""
	for rel := range cand {
		if MatchVersion(spec, rel) && (best == "" || VersionLess(best, rel)) {
			best = rel
		}
	}
	if best == "" {
		return "", nil
	}
	return best, cand[best]
}

// MirrorURL returns the Debian mirror configured on the host: $VMTEST_MIRROR,
// else the first non-security Debian URI in /etc/apt, else deb.debian.org.
func MirrorURL() string {
	if m := os.Getenv("VMTEST_MIRROR"); m != "" {
		return m
	}
	files := []string{"/etc/apt/sources.list"}
	more, _ := filepath.Glob("/etc/apt/sources.list.d/*")
	files = append(files, more...)
	for _, f := range files {
		if !strings.HasSuffix(f, ".list") && !strings.HasSuffix(f, ".sources") {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if m := mirrorFromSources(string(data)); m != "" {
			return m
		}
	}
	return defaultMirror
}

func mirrorFromSources(text string) string {
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		var uris []string
		switch {
		case strings.HasPrefix(line, "URIs:"):
			uris = strings.Fields(strings.TrimPrefix(line, "URIs:"))
		case strings.HasPrefix(line, "deb "):
			for _, f := range strings.Fields(line)[1:] {
				if strings.Contains(f, "://") {
					uris = append(uris, f)
					break
				}
			}
		}
		for _, u := range uris {
			u = strings.TrimRight(u, "/")
			if strings.HasSuffix(u, "/debian") {
				return u
			}
		}
	}
	return ""
}

type aptEnv struct {
	opts []string
	log  func(string, ...any)
}

func (c *Cache) apt(ctx context.Context, update bool) (*aptEnv, error) {
	dir := filepath.Join(c.Dir, "apt")
	for _, d := range []string{"etc", "state/lists/partial", "cache/archives/partial"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	var sl bytes.Buffer
	mirror := MirrorURL()
	for _, s := range Suites {
		fmt.Fprintf(&sl, "deb [signed-by=%s] %s %s main\n", debianKeyring, mirror, s)
	}
	list := filepath.Join(dir, "etc", "sources.list")
	old, _ := os.ReadFile(list)
	if !bytes.Equal(old, sl.Bytes()) {
		update = true
		if err := os.WriteFile(list, sl.Bytes(), 0o644); err != nil {
			return nil, err
		}
	}
	status := filepath.Join(dir, "state", "status")
	if !isFile(status) {
		if err := os.WriteFile(status, nil, 0o644); err != nil {
			return nil, err
		}
	}
	a := &aptEnv{log: c.logf, opts: []string{
		"-o", "Dir::Etc::SourceList=" + list,
		"-o", "Dir::Etc::SourceParts=/dev/null",
		"-o", "Dir::Etc::Preferences=/dev/null",
		"-o", "Dir::Etc::PreferencesParts=/dev/null",
		"-o", "Dir::State=" + filepath.Join(dir, "state"),
		"-o", "Dir::State::status=" + status,
		"-o", "Dir::Cache=" + filepath.Join(dir, "cache"),
		"-o", "Debug::NoLocking=1",
		"-o", "APT::Architecture=amd64",
		"-o", "APT::Architectures=amd64",
		"-o", "APT::Sandbox::User=root",
		"-o", "Acquire::Languages=none",
		"-o", "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false",
		"-o", "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false",
		"-o", "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false",
		"-o", "Acquire::IndexTargets::deb::DEP-11-icons-hidpi::DefaultEnabled=false",
		"-o", "Acquire::IndexTargets::deb::CNF::DefaultEnabled=false",
	}}
	lists, _ := filepath.Glob(filepath.Join(dir, "state/lists/*_Packages*"))
	if !update && len(lists) > 0 {
		if st, err := os.Stat(lists[0]); err == nil && time.Since(st.ModTime()) < aptListsMaxAge {
			return a, nil
		}
	}
	c.logf("apt-get update (%s: %s)", mirror, strings.Join(Suites, " "))
	if _, err := a.run(ctx, "", "apt-get", "-q", "update"); err != nil {
		return nil, err
	}
	now := time.Now()
	lists, _ = filepath.Glob(filepath.Join(dir, "state/lists/*_Packages*"))
	for _, l := range lists {
		os.Chtimes(l, now, now)
	}
	return a, nil
}

// unpackDebs downloads the Debian packages pkgs (names, or name/suite) and
// unpacks them with dpkg-deb -x into dest, which is replaced; nothing is
// installed.
func (c *Cache) unpackDebs(ctx context.Context, apt *aptEnv, pkgs []string, dest string) error {
	debs, err := os.MkdirTemp(c.Dir, "debs-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(debs)
	if _, err := apt.run(ctx, debs, "apt-get", append([]string{"download"}, pkgs...)...); err != nil {
		return err
	}
	files, _ := filepath.Glob(filepath.Join(debs, "*.deb"))
	if len(files) != len(pkgs) {
		return fmt.Errorf("apt-get download %v: got %d files", pkgs, len(files))
	}
	os.RemoveAll(dest)
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return err
	}
	for _, f := range files {
		if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", f, dest).CombinedOutput(); err != nil {
			return fmt.Errorf("dpkg-deb -x %s: %v: %s", f, err, out)
		}
	}
	return nil
}

func (a *aptEnv) run(ctx context.Context, dir, tool string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, tool, append(append([]string{}, a.opts...), args...)...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %v\n%s", tool, strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}

func (a *aptEnv) pkgnames(ctx context.Context, prefix string) ([]string, error) {
	out, err := a.run(ctx, "", "apt-cache", "pkgnames", prefix)
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(out)), nil
}
