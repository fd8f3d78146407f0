package vmtest

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Kernel is an unpacked kernel, ready to boot.
type Kernel struct {
	Root    string // unpacked package tree ("" for a bare image)
	Release string // uname -r, e.g. 6.1.0-50-cloud-amd64
	Image   string // path of the bzImage / vmlinuz
	Config  string // path of the kernel config, "" if unknown
	ModDir  string // lib/modules/RELEASE, "" if the kernel has no modules
}

// MajorMinor returns "X.Y" of the kernel release.
func (k *Kernel) MajorMinor() string { return majorMinor(k.Release) }

var majorMinorRE = regexp.MustCompile(`^(\d+)\.(\d+)`)

func majorMinor(release string) string {
	m := majorMinorRE.FindStringSubmatch(release)
	if m == nil {
		return ""
	}
	return m[1] + "." + m[2]
}

// FindKernel discovers a kernel in root, a directory that contains an
// unpacked Debian kernel package. Both layouts are understood:
//
//   - linux-image-VER (bullseye .. trixie): boot/vmlinuz-VER, boot/config-VER,
//     lib/modules/VER (or usr/lib/modules/VER)
//   - linux-binary-VER + linux-modules-VER + linux-base-VER (sid):
//     usr/lib/modules/VER/vmlinuz, usr/lib/modules/VER/config
func FindKernel(root string) (*Kernel, error) {
	var k *Kernel
	if imgs, _ := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*")); len(imgs) > 0 {
		sort.Slice(imgs, func(i, j int) bool { return VersionLess(imgs[i], imgs[j]) })
		img := imgs[len(imgs)-1]
		k = &Kernel{Root: root, Release: strings.TrimPrefix(filepath.Base(img), "vmlinuz-"), Image: img}
	} else {
		for _, pattern := range []string{"usr/lib/modules/*/vmlinuz", "lib/modules/*/vmlinuz"} {
			imgs, _ := filepath.Glob(filepath.Join(root, pattern))
			if len(imgs) > 0 {
				sort.Slice(imgs, func(i, j int) bool { return VersionLess(imgs[i], imgs[j]) })
				img := imgs[len(imgs)-1]
				k = &Kernel{Root: root, Release: filepath.Base(filepath.Dir(img)), Image: img}
				break
			}
		}
	}
	if k == nil {
		return nil, fmt.Errorf("no kernel image (boot/vmlinuz-* or usr/lib/modules/*/vmlinuz) in %s", root)
	}
	for _, c := range []string{
		filepath.Join(root, "boot", "config-"+k.Release),
		filepath.Join(root, "usr/lib/modules", k.Release, "config"),
		filepath.Join(root, "lib/modules", k.Release, "config"),
	} {
		if isFile(c) {
			k.Config = c
			break
		}
	}
	for _, d := range []string{
		filepath.Join(root, "usr/lib/modules", k.Release),
		filepath.Join(root, "lib/modules", k.Release),
	} {
		if isDir(filepath.Join(d, "kernel")) {
			k.ModDir = d
			break
		}
	}
	return k, nil
}

// KernelFromImage describes a bare kernel image (no modules). A config next to
// it (config-RELEASE or config) is used if present.
func KernelFromImage(image string) *Kernel {
	base := filepath.Base(image)
	rel := strings.TrimPrefix(base, "vmlinuz-")
	if rel == base {
		rel = ""
	}
	k := &Kernel{Release: rel, Image: image}
	for _, c := range []string{"config-" + rel, "config", ".config"} {
		if p := filepath.Join(filepath.Dir(image), c); isFile(p) {
			k.Config = p
			break
		}
	}
	return k
}

// MatchVersion reports whether release (e.g. 6.12.117+deb13-cloud-amd64)
// matches the prefix spec (e.g. "6.12", "6", "6.12.117"). Components must
// match completely: "6.1" does not match 6.12.
func MatchVersion(spec, release string) bool {
	if spec == "" {
		return false
	}
	if !strings.HasPrefix(release, spec) {
		return false
	}
	rest := release[len(spec):]
	return rest == "" || rest[0] < '0' || rest[0] > '9'
}

// VersionLess compares two strings naturally: runs of digits compare as
// numbers, so 6.12.95 < 6.12.117 and 5.10.0-30 < 5.10.0-32.
func VersionLess(a, b string) bool {
	for a != "" && b != "" {
		da, db := digitRun(a), digitRun(b)
		if da > 0 && db > 0 {
			na, _ := strconv.ParseUint(a[:min(da, 18)], 10, 64)
			nb, _ := strconv.ParseUint(b[:min(db, 18)], 10, 64)
			if na != nb {
				return na < nb
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

func digitRun(s string) int {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}
