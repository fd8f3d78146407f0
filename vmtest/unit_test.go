package vmtest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

type cpioEntry struct {
	name   string
	mode   uint32
	data   []byte
	offset int
}

// readCPIO parses a newc archive independently of the writer.
func readCPIO(t *testing.T, b []byte) []cpioEntry {
	t.Helper()
	var entries []cpioEntry
	off := 0
	align := func(n int) int { return (n + 3) &^ 3 }
	for {
		if off+110 > len(b) {
			t.Fatalf("truncated header at %d", off)
		}
		h := string(b[off : off+110])
		if h[:6] != "070701" {
			t.Fatalf("bad magic %q at %d", h[:6], off)
		}
		field := func(i int) int {
			v, err := strconv.ParseUint(h[6+8*i:14+8*i], 16, 32)
			if err != nil {
				t.Fatal(err)
			}
			return int(v)
		}
		mode, size, namesize := field(1), field(6), field(11)
		name := string(b[off+110 : off+110+namesize-1])
		if b[off+110+namesize-1] != 0 {
			t.Fatalf("name %q not NUL terminated", name)
		}
		dataOff := align(off + 110 + namesize)
		e := cpioEntry{name: name, mode: uint32(mode), data: b[dataOff : dataOff+size], offset: off}
		off = align(dataOff + size)
		if name == "TRAILER!!!" {
			if len(b)%512 != 0 {
				t.Errorf("archive length %d not a multiple of 512", len(b))
			}
			return entries
		}
		entries = append(entries, e)
	}
}

func TestCPIOWriter(t *testing.T) {
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "sub"), 0o755)
	os.WriteFile(filepath.Join(src, "sub", "f.txt"), []byte("abc"), 0o600)
	os.Symlink("sub/f.txt", filepath.Join(src, "link"))
	host := filepath.Join(src, "host.bin")
	os.WriteFile(host, bytes.Repeat([]byte{7}, 1001), 0o755)

	var buf bytes.Buffer
	w := NewCPIOWriter(&buf)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(w.File("/a/b/c.txt", 0o644, []byte("hello")))
	must(w.Dir("/a", 0o700)) // already created as parent: not repeated
	must(w.FileFrom("/bin/x", 0o755, host))
	must(w.Symlink("/sbin", "bin"))
	must(w.Tree("/t", src))
	must(w.Close())

	entries := readCPIO(t, buf.Bytes())
	byName := map[string]cpioEntry{}
	var names []string
	for _, e := range entries {
		if e.offset%4 != 0 {
			t.Errorf("%s: header at unaligned offset %d", e.name, e.offset)
		}
		if _, dup := byName[e.name]; dup {
			t.Errorf("duplicate entry %s", e.name)
		}
		byName[e.name] = e
		names = append(names, e.name)
	}
	want := []string{"a", "a/b", "a/b/c.txt", "bin", "bin/x", "sbin", "t", "t/host.bin", "t/link", "t/sub", "t/sub/f.txt"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("names\n got %v\nwant %v", names, want)
	}
	check := func(name string, mode uint32, data string) {
		t.Helper()
		e, ok := byName[name]
		if !ok {
			t.Fatalf("%s missing", name)
		}
		if e.mode != mode {
			t.Errorf("%s: mode %o, want %o", name, e.mode, mode)
		}
		if data != "" && string(e.data) != data {
			t.Errorf("%s: data %q, want %q", name, e.data, data)
		}
	}
	check("a", cpioModeDir|0o755, "")
	check("a/b/c.txt", cpioModeFile|0o644, "hello")
	check("bin/x", cpioModeFile|0o755, strings.Repeat("\x07", 1001))
	check("sbin", cpioModeSymlink|0o777, "bin")
	check("t/link", cpioModeSymlink|0o777, "sub/f.txt")
	check("t/sub/f.txt", cpioModeFile|0o600, "abc")

	// cpio(1) agrees, if installed.
	if _, err := exec.LookPath("cpio"); err == nil {
		cmd := exec.Command("cpio", "-t", "--quiet")
		cmd.Stdin = bytes.NewReader(buf.Bytes())
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("cpio -t: %v", err)
		}
		if got := strings.Fields(string(out)); !reflect.DeepEqual(got, want) {
			t.Errorf("cpio -t: %v", got)
		}
	}
}

func writeFiles(t *testing.T, root string, files ...string) {
	t.Helper()
	for _, f := range files {
		p := filepath.Join(root, f)
		if strings.HasSuffix(f, "/") {
			os.MkdirAll(p, 0o755)
			continue
		}
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFindKernel(t *testing.T) {
	old := t.TempDir()
	writeFiles(t, old,
		"boot/vmlinuz-6.1.0-50-cloud-amd64", "boot/config-6.1.0-50-cloud-amd64", "boot/System.map-6.1.0-50-cloud-amd64",
		"lib/modules/6.1.0-50-cloud-amd64/kernel/drivers/net/veth.ko")
	k, err := FindKernel(old)
	if err != nil {
		t.Fatal(err)
	}
	want := &Kernel{
		Root:    old,
		Release: "6.1.0-50-cloud-amd64",
		Image:   filepath.Join(old, "boot/vmlinuz-6.1.0-50-cloud-amd64"),
		Config:  filepath.Join(old, "boot/config-6.1.0-50-cloud-amd64"),
		ModDir:  filepath.Join(old, "lib/modules/6.1.0-50-cloud-amd64"),
	}
	if !reflect.DeepEqual(k, want) {
		t.Errorf("old layout: got %+v, want %+v", k, want)
	}
	if k.MajorMinor() != "6.1" {
		t.Errorf("MajorMinor %s", k.MajorMinor())
	}

	// trixie: image in /boot, modules in /usr/lib/modules.
	trixie := t.TempDir()
	writeFiles(t, trixie, "boot/vmlinuz-6.12.117+deb13-cloud-amd64", "boot/config-6.12.117+deb13-cloud-amd64",
		"usr/lib/modules/6.12.117+deb13-cloud-amd64/kernel/net/sched/sch_ingress.ko.xz")
	k, err = FindKernel(trixie)
	if err != nil {
		t.Fatal(err)
	}
	if k.ModDir != filepath.Join(trixie, "usr/lib/modules/6.12.117+deb13-cloud-amd64") || k.Release != "6.12.117+deb13-cloud-amd64" {
		t.Errorf("trixie layout: %+v", k)
	}

	// sid: linux-binary + linux-modules + linux-base.
	sid := t.TempDir()
	rel := "7.2.13+deb14-cloud-amd64"
	writeFiles(t, sid, "usr/lib/modules/"+rel+"/vmlinuz", "usr/lib/modules/"+rel+"/config",
		"usr/lib/modules/"+rel+"/kernel/drivers/net/veth.ko.xz", "usr/lib/modules/"+rel+"/modules.builtin")
	k, err = FindKernel(sid)
	if err != nil {
		t.Fatal(err)
	}
	want = &Kernel{
		Root:    sid,
		Release: rel,
		Image:   filepath.Join(sid, "usr/lib/modules", rel, "vmlinuz"),
		Config:  filepath.Join(sid, "usr/lib/modules", rel, "config"),
		ModDir:  filepath.Join(sid, "usr/lib/modules", rel),
	}
	if !reflect.DeepEqual(k, want) {
		t.Errorf("sid layout: got %+v, want %+v", k, want)
	}

	if _, err := FindKernel(t.TempDir()); err == nil {
		t.Error("empty dir: no error")
	}

	// Bare image with a config next to it.
	bare := t.TempDir()
	writeFiles(t, bare, "vmlinuz-6.6.0", "config-6.6.0")
	k = KernelFromImage(filepath.Join(bare, "vmlinuz-6.6.0"))
	if k.Release != "6.6.0" || k.Config != filepath.Join(bare, "config-6.6.0") || k.ModDir != "" {
		t.Errorf("bare image: %+v", k)
	}
}

func TestCacheLocal(t *testing.T) {
	c := NewCache(t.TempDir())
	for _, rel := range []string{"6.1.0-47-cloud-amd64", "6.1.0-50-cloud-amd64", "6.12.95+deb12-cloud-amd64"} {
		root := filepath.Join(c.Dir, "kernels", rel)
		writeFiles(t, root, "boot/vmlinuz-"+rel, markerFile)
	}
	writeFiles(t, filepath.Join(c.Dir, "kernels", "5.10.0-32-cloud-amd64"), "boot/vmlinuz-5.10.0-32-cloud-amd64") // incomplete: no marker
	if k := c.LocalMatch("6.1"); k == nil || k.Release != "6.1.0-50-cloud-amd64" {
		t.Errorf("6.1: %+v", k)
	}
	if k := c.LocalMatch("6.12"); k == nil || k.Release != "6.12.95+deb12-cloud-amd64" {
		t.Errorf("6.12: %+v", k)
	}
	if k := c.LocalMatch("5.10"); k != nil {
		t.Errorf("5.10 without marker: %+v", k)
	}
}

func TestVersions(t *testing.T) {
	for _, tc := range []struct {
		spec, rel string
		want      bool
	}{
		{"6.1", "6.1.0-50-cloud-amd64", true},
		{"6.1", "6.12.117+deb13-cloud-amd64", false},
		{"6.12", "6.12.117+deb13-cloud-amd64", true},
		{"7", "7.2.13+deb14-cloud-amd64", true},
		{"7.2", "7.2.13+deb14-cloud-amd64", true},
		{"7.2", "7.20.1", false},
		{"5.10", "5.10.0-32-cloud-amd64", true},
		{"", "5.10.0", false},
	} {
		if got := MatchVersion(tc.spec, tc.rel); got != tc.want {
			t.Errorf("MatchVersion(%q, %q) = %v", tc.spec, tc.rel, got)
		}
	}
	ordered := []string{"5.10.0-30-cloud-amd64", "5.10.0-32-cloud-amd64", "6.1.0-9", "6.1.0-50", "6.12.95+deb12", "6.12.117+deb13", "7.2.13+deb14"}
	for i := range ordered {
		for j := range ordered {
			if got := VersionLess(ordered[i], ordered[j]); got != (i < j) {
				t.Errorf("VersionLess(%s, %s) = %v", ordered[i], ordered[j], got)
			}
		}
	}
}

func TestKernelCandidates(t *testing.T) {
	names := []string{
		"linux-image-5.10.0-30-cloud-amd64", "linux-image-5.10.0-32-cloud-amd64",
		"linux-image-6.1.0-50-cloud-amd64", "linux-image-6.1.0-50-cloud-amd64-unsigned", "linux-image-6.1.0-50-cloud-amd64-dbg",
		"linux-image-6.1.0-50-amd64",
		"linux-image-6.12.95+deb12-cloud-amd64", "linux-image-6.12.117+deb13-cloud-amd64",
		// sid: linux-image- is a metapackage over the split packages.
		"linux-image-7.2.13+deb14-cloud-amd64", "linux-binary-7.2.13+deb14-cloud-amd64",
		"linux-modules-7.2.13+deb14-cloud-amd64", "linux-base-7.2.13+deb14-cloud-amd64",
		"linux-headers-7.2.13+deb14-cloud-amd64", "linux-image-cloud-amd64",
	}
	cand := KernelCandidates(names, "cloud-amd64")
	for _, tc := range []struct {
		spec, rel string
		pkgs      []string
	}{
		{"5.10", "5.10.0-32-cloud-amd64", []string{"linux-image-5.10.0-32-cloud-amd64"}},
		{"6.1", "6.1.0-50-cloud-amd64", []string{"linux-image-6.1.0-50-cloud-amd64"}},
		{"6.12", "6.12.117+deb13-cloud-amd64", []string{"linux-image-6.12.117+deb13-cloud-amd64"}},
		{"7", "7.2.13+deb14-cloud-amd64", []string{"linux-binary-7.2.13+deb14-cloud-amd64", "linux-modules-7.2.13+deb14-cloud-amd64", "linux-base-7.2.13+deb14-cloud-amd64"}},
		{"6.6", "", nil},
	} {
		rel, pkgs := PickKernel(cand, tc.spec)
		if rel != tc.rel || !reflect.DeepEqual(pkgs, tc.pkgs) {
			t.Errorf("PickKernel(%s) = %s %v, want %s %v", tc.spec, rel, pkgs, tc.rel, tc.pkgs)
		}
	}
}

func TestMirrorFromSources(t *testing.T) {
	deb822 := "Types: deb\n# http://snapshot.debian.org/archive/debian/20250520T000000Z\nURIs: http://deb.debian.org/debian\nSuites: bookworm\n\nTypes: deb\nURIs: http://deb.debian.org/debian-security\n"
	if m := mirrorFromSources(deb822); m != "http://deb.debian.org/debian" {
		t.Errorf("deb822: %q", m)
	}
	list := "deb http://security.debian.org/debian-security bookworm-security main\ndeb [arch=amd64] http://ftp.de.debian.org/debian/ bookworm main\n"
	if m := mirrorFromSources(list); m != "http://ftp.de.debian.org/debian" {
		t.Errorf("one-line: %q", m)
	}
	if m := mirrorFromSources("deb https://packages.cloud.google.com/apt cloud-sdk main\n"); m != "" {
		t.Errorf("foreign: %q", m)
	}
}

func TestResolveModuleOrder(t *testing.T) {
	deps := map[string][]string{
		"veth":               nil,
		"cls_bpf":            {"sch_ingress_helper"},
		"sch_ingress":        {"sch_ingress_helper"},
		"sch_ingress_helper": {"base"},
		"base":               nil,
		"loop_a":             {"loop_b"},
		"loop_b":             {"loop_a"},
	}
	builtin := map[string]bool{"act_bpf": true}
	lookup := func(n string) (bool, bool) { _, ok := deps[n]; return ok, builtin[n] }
	depends := func(n string) ([]string, error) { return deps[n], nil }

	order, missing, err := resolveModules([]string{"sch-ingress", "cls_bpf", "veth", "act_bpf", "netkit", "veth"}, lookup, depends)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"base", "sch_ingress_helper", "sch_ingress", "cls_bpf", "veth"}; !reflect.DeepEqual(order, want) {
		t.Errorf("order %v, want %v", order, want)
	}
	if !reflect.DeepEqual(missing, []string{"netkit"}) {
		t.Errorf("missing %v", missing)
	}
	if _, _, err := resolveModules([]string{"loop_a"}, lookup, depends); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("cycle: %v", err)
	}
}

// fakeModule builds a minimal ELF64 relocatable object with a .modinfo
// section.
func fakeModule(modinfo string) []byte {
	shstr := "\x00.modinfo\x00.shstrtab\x00"
	const ehsize, shentsize = 64, 64
	infoOff := ehsize
	strOff := infoOff + len(modinfo)
	shOff := (strOff + len(shstr) + 7) &^ 7
	var b bytes.Buffer
	le := binary.LittleEndian
	ident := [16]byte{0x7f, 'E', 'L', 'F', 2, 1, 1}
	b.Write(ident[:])
	binary.Write(&b, le, struct {
		Type, Machine                                        uint16
		Version                                              uint32
		Entry, Phoff, Shoff                                  uint64
		Flags                                                uint32
		Ehsize, Phentsize, Phnum, Shentsize, Shnum, Shstrndx uint16
	}{1, 62, 1, 0, 0, uint64(shOff), 0, ehsize, 0, 0, shentsize, 3, 2})
	b.WriteString(modinfo)
	b.WriteString(shstr)
	for b.Len() < shOff {
		b.WriteByte(0)
	}
	type shdr struct {
		Name, Type                uint32
		Flags, Addr, Offset, Size uint64
		Link, Info                uint32
		Addralign, Entsize        uint64
	}
	binary.Write(&b, le, shdr{})
	binary.Write(&b, le, shdr{Name: 1, Type: 1, Flags: 2, Offset: uint64(infoOff), Size: uint64(len(modinfo)), Addralign: 1})
	binary.Write(&b, le, shdr{Name: 10, Type: 3, Offset: uint64(strOff), Size: uint64(len(shstr)), Addralign: 1})
	return b.Bytes()
}

func TestModuleIndex(t *testing.T) {
	dir := t.TempDir()
	write := func(rel string, data []byte) {
		p := filepath.Join(dir, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("kernel/net/sched/cls_bpf.ko", fakeModule("license=GPL\x00depends=sch_helper\x00name=cls_bpf\x00"))
	write("kernel/net/sched/sch-helper.ko", fakeModule("license=GPL\x00depends=\x00name=sch_helper\x00"))
	write("modules.builtin", []byte("kernel/net/sched/act_bpf.ko\n"))
	if _, err := exec.LookPath("xz"); err == nil {
		cmd := exec.Command("xz", "-c")
		cmd.Stdin = bytes.NewReader(fakeModule("depends=cls_bpf,sch_helper\x00"))
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		write("kernel/drivers/net/veth.ko.xz", out)
	} else {
		write("kernel/drivers/net/veth.ko", fakeModule("depends=cls_bpf,sch_helper\x00"))
	}
	idx, err := IndexModules(dir)
	if err != nil {
		t.Fatal(err)
	}
	info, err := ModInfo(fakeModule("license=GPL\x00depends=a,b\x00"))
	if err != nil || !reflect.DeepEqual(info["depends"], []string{"a,b"}) {
		t.Fatalf("ModInfo: %v %v", info, err)
	}
	order, missing, err := idx.Resolve([]string{"veth", "act_bpf", "nope"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"sch_helper", "cls_bpf", "veth"}; !reflect.DeepEqual(order, want) {
		t.Errorf("order %v, want %v", order, want)
	}
	if !reflect.DeepEqual(missing, []string{"nope"}) {
		t.Errorf("missing %v", missing)
	}
	data, err := idx.Content("veth")
	if err != nil || !bytes.HasPrefix(data, []byte("\x7fELF")) {
		t.Errorf("veth content: %v", err)
	}
}

func TestQemuArgs(t *testing.T) {
	q := &QemuConfig{Binary: "qemu-system-x86_64", Accel: "tcg", Memory: "1G", CPUs: 2,
		Kernel: "/k/vmlinuz", Initrd: "/t/initrd", Cmdline: DefaultCmdline + " x=1", Console: "/t/console.log"}
	args := q.Args()
	joined := strings.Join(args, " ")
	for _, want := range []string{
		"-accel tcg,thread=single", "-cpu max", "-no-reboot", "-nodefaults", "-m 1G", "-smp 2",
		"-kernel /k/vmlinuz", "-initrd /t/initrd", "-chardev file,id=con,path=/t/console.log",
		"-chardev stdio,id=out,signal=off",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("missing %q in %s", want, joined)
		}
	}
	if i := slices.Index(args, "-append"); i < 0 || args[i+1] != DefaultCmdline+" x=1" {
		t.Errorf("-append: %v", args)
	}
	// ttyS0 (first -serial) is the console, ttyS1 the test output.
	var serials []string
	for i, a := range args {
		if a == "-serial" {
			serials = append(serials, args[i+1])
		}
	}
	if !reflect.DeepEqual(serials, []string{"chardev:con", "chardev:out"}) {
		t.Errorf("serial order %v", serials)
	}
	q.Accel = "kvm"
	joined = strings.Join(q.Args(), " ")
	if !strings.Contains(joined, "-accel kvm -cpu host") || strings.Contains(joined, "tcg") {
		t.Errorf("kvm args: %s", joined)
	}
	for _, want := range []string{"console=ttyS0", "panic=-1", "rdinit=/init"} {
		if !strings.Contains(DefaultCmdline, want) {
			t.Errorf("cmdline lacks %s", want)
		}
	}
}

func TestProbeAccel(t *testing.T) {
	sys := t.TempDir()
	kvm := filepath.Join(t.TempDir(), "kvm")
	os.WriteFile(kvm, nil, 0o666)
	os.Mkdir(filepath.Join(sys, "kvm"), 0o755)
	os.Mkdir(filepath.Join(sys, "kvm_pvm"), 0o755)
	if a := probeAccel(sys, kvm); a != "tcg" {
		t.Errorf("kvm+kvm_pvm only: %s", a)
	}
	os.Mkdir(filepath.Join(sys, "kvm_intel"), 0o755)
	if a := probeAccel(sys, kvm); a != "kvm" {
		t.Errorf("kvm_intel: %s", a)
	}
	if a := probeAccel(sys, filepath.Join(sys, "nodev")); a != "tcg" {
		t.Errorf("no /dev/kvm: %s", a)
	}
}

func TestStatusLine(t *testing.T) {
	const nonce = "0123abcd"
	line := "VMTEST-STATUS-" + nonce + ": exit=3\n"
	if code, ok := ParseStatus(line, nonce); !ok || code != 3 {
		t.Errorf("ParseStatus = %d %v", code, ok)
	}
	for _, bad := range []string{"VMTEST-STATUS-other: exit=3", "VMTEST-STATUS-" + nonce + ": exit=x", "VMTEST-STATUS-" + nonce + ": exit=300", "exit=0"} {
		if _, ok := ParseStatus(bad, nonce); ok {
			t.Errorf("ParseStatus(%q) ok", bad)
		}
	}

	for _, tc := range []struct {
		in, out string
		code    int
		ok      bool
	}{
		{"=== RUN TestX\nPASS\n" + line + "junk after\n", "=== RUN TestX\nPASS\n", 3, true},
		{"partial line" + line, "partial line\n", 3, true},
		{"PASS\nVMTEST-STATUS-wrong: exit=0\n", "PASS\nVMTEST-STATUS-wrong: exit=0\n", 0, false},
		{"no newline at end", "no newline at end", 0, false},
		{"", "", 0, false},
	} {
		var out bytes.Buffer
		code, ok, err := OutputFilter(strings.NewReader(tc.in), &out, nonce)
		if err != nil || code != tc.code || ok != tc.ok || out.String() != tc.out {
			t.Errorf("OutputFilter(%q) = %d %v %v, %q; want %d %v %q", tc.in, code, ok, err, out.String(), tc.code, tc.ok, tc.out)
		}
	}
}

func TestTestTimeout(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want time.Duration
	}{
		{nil, 12 * time.Minute},
		{[]string{"-test.v", "-test.timeout=30s"}, 30*time.Second + 2*time.Minute},
		{[]string{"-test.timeout", "1m"}, 3 * time.Minute},
		{[]string{"-test.timeout=0s"}, time.Hour},
	} {
		if got := TestTimeout(tc.args); got != tc.want {
			t.Errorf("TestTimeout(%v) = %v, want %v", tc.args, got, tc.want)
		}
	}
}

func TestVngArgs(t *testing.T) {
	c := VngConfig{Image: "/k/vmlinuz", Dir: "/src/pkg", Env: []string{"CI=true"}, Memory: "1G", CPUs: 2,
		Flags: []string{"--disable-kvm", "--verbose"}, Binary: "/b/x.test", Args: []string{"-test.v"},
		Modules: []string{"veth", "loop"}}
	want := []string{"vng", "--run", "/k/vmlinuz", "--user", "root", "--cwd", "/src/pkg", "--memory", "1G", "--cpus", "2",
		"--disable-kvm", "--verbose", "--", "env", "CI=true", "/bin/sh", "-c",
		"modprobe -qa veth loop 2>/dev/null; " + vngCopy, "/b/x.test", "-test.v"}
	if got := c.Argv(); !reflect.DeepEqual(got, want) {
		t.Errorf("got  %v\nwant %v", got, want)
	}
	// Defaults are vng's: no --cwd, --memory, --cpus.
	c = VngConfig{Image: "/k/vmlinuz", Binary: "/b/x"}
	want = []string{"vng", "--run", "/k/vmlinuz", "--user", "root", "--", "env", "/bin/sh", "-c", vngCopy, "/b/x"}
	if got := c.Argv(); !reflect.DeepEqual(got, want) {
		t.Errorf("got  %v\nwant %v", got, want)
	}
}

func TestVngFlags(t *testing.T) {
	t.Setenv("VMTEST_VNG_FLAGS", "--disable-kvm --memory 2G")
	if got := VngFlags("tcg"); !reflect.DeepEqual(got, []string{"--disable-kvm", "--memory", "2G", vngSingleThread}) {
		t.Errorf("VngFlags() = %v: --disable-kvm given once, kept once, and single-threaded TCG", got)
	}
	t.Setenv("VMTEST_VNG_FLAGS", "")
	if got := VngFlags("kvm"); len(got) != 0 {
		t.Errorf("VngFlags(kvm) = %v, want none", got)
	}
	if got := VngFlags("tcg"); !reflect.DeepEqual(got, []string{"--disable-kvm", vngSingleThread}) {
		t.Errorf("VngFlags(tcg) = %v, want --disable-kvm and single-threaded TCG", got)
	}
}

func TestDepmodBase(t *testing.T) {
	for _, tc := range []struct{ dir, rel, want string }{
		{"/c/k/6.1.0-50-cloud-amd64/lib/modules/6.1.0-50-cloud-amd64", "6.1.0-50-cloud-amd64", "/c/k/6.1.0-50-cloud-amd64"},
		{"/c/k/7.2/usr/lib/modules/7.2.13+deb14-cloud-amd64/", "7.2.13+deb14-cloud-amd64", "/c/k/7.2/usr"},
		{"/c/k/x/lib/modules/6.1.0-49-cloud-amd64", "6.1.0-50-cloud-amd64", ""},
		{"/c/k/x/modules/6.1", "6.1", ""},
		{"/lib/modules/6.1", "", ""},
	} {
		got, err := DepmodBase(tc.dir, tc.rel)
		if got != tc.want || (err != nil) != (tc.want == "") {
			t.Errorf("DepmodBase(%q, %q) = %q, %v; want %q", tc.dir, tc.rel, got, err, tc.want)
		}
	}
}

func TestIsRustVirtiofsd(t *testing.T) {
	for v, want := range map[string]bool{
		"virtiofsd 1.13.2\n": true,
		"virtiofsd version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright (c) 2003-2022\n": false,
		"": false,
	} {
		if got := isRustVirtiofsd(v); got != want {
			t.Errorf("isRustVirtiofsd(%q) = %v", v, got)
		}
	}
}

func TestGuestEnv(t *testing.T) {
	t.Setenv("VMTEST_ENV", "FOO")
	env := GuestEnv([]string{"CI=true", "BPFKIT_X=1", "HOME=/home/u", "FOO=bar", "PATH=/x", "GODEBUG=a=1"})
	for _, want := range []string{"CI=true", "BPFKIT_X=1", "FOO=bar", "GODEBUG=a=1", "HOME=/root"} {
		if !slices.Contains(env, want) {
			t.Errorf("missing %s in %v", want, env)
		}
	}
	for _, bad := range []string{"HOME=/home/u", "PATH=/x"} {
		if slices.Contains(env, bad) {
			t.Errorf("%s leaked into %v", bad, env)
		}
	}
	f := filepath.Join(t.TempDir(), "bpfkit")
	os.WriteFile(f, nil, 0o755)
	if got := EnvFiles([]string{"BPFKIT_BIN=" + f, "BPFKIT_Y=relative", "BPFKIT_Z=/nonexistent"}); !reflect.DeepEqual(got, []string{f}) {
		t.Errorf("EnvFiles = %v", got)
	}
}

func TestParseTestJSON(t *testing.T) {
	ev := func(action, test, output string) string {
		return fmt.Sprintf(`{"Action":%q,"Package":"p","Test":%q,"Output":%q}`, action, test, output) + "\n"
	}
	for _, tc := range []struct {
		name, in, status, cell string
	}{
		{"pass", ev("run", "TestA", "") + ev("pass", "TestA", "") + ev("pass", "TestA/sub", "") + ev("pass", "", ""), "pass", "pass"},
		{"some skipped", ev("pass", "TestA", "") + ev("skip", "TestB", "") + ev("pass", "", ""), "pass", "pass (1 skipped)"},
		{"all skipped", ev("skip", "TestA", "") + ev("skip", "TestB", "") + ev("pass", "", ""), "skip", "skip"},
		{"fail", ev("pass", "TestA", "") + ev("fail", "TestB", "") + ev("fail", "", ""), "fail", "FAIL (1/2)"},
		{"timeout", ev("output", "", "vmrun: timeout: VM (kernel 6.1) did not finish within 10s\n") + ev("fail", "", ""), "timeout", "TIMEOUT"},
		{"vm error", "vmrun: VM (kernel 6.1) stopped without reporting an exit status\n" + ev("fail", "", ""), "vm-error", "VM-ERROR"},
		{"no tests", ev("output", "", "testing: warning: no tests to run\n") + ev("pass", "", ""), "skip", "skip"}, // in a VM: a package of TestHost* tests only
		{"nothing", "", "no-run", "NO-RUN"},
		// Skipped subtests count: their parent passes having checked less.
		{"subtest skipped", ev("skip", "TestA/x", "") + ev("pass", "TestA/y", "") + ev("pass", "TestA", "") + ev("pass", "", ""),
			"pass", "pass (1 skipped)"},
		{"every subtest skipped", ev("skip", "TestA/x", "") + ev("skip", "TestA/y", "") + ev("pass", "TestA", "") +
			ev("pass", "TestB", "") + ev("pass", "", ""), "pass", "pass (2 skipped)"},
		// A package whose tests all skipped, some through their subtests, is
		// not a pass.
		{"all skipped through subtests", ev("skip", "TestA/x", "") + ev("skip", "TestA/y/z", "") + ev("pass", "TestA/y", "") +
			ev("pass", "TestA", "") + ev("skip", "TestB", "") + ev("pass", "", ""), "skip", "skip"},
		{"fail among skipped subtests", ev("skip", "TestA/x", "") + ev("pass", "TestA", "") + ev("fail", "TestB/y", "") +
			ev("fail", "TestB", "") + ev("pass", "TestC", "") + ev("fail", "", ""), "fail", "FAIL (1/3)"},
	} {
		o, err := ParseTestJSON(strings.NewReader(tc.in))
		if err != nil {
			t.Fatal(err)
		}
		if o.Status != tc.status || o.Cell() != tc.cell {
			t.Errorf("%s: status %s cell %q, want %s %q", tc.name, o.Status, o.Cell(), tc.status, tc.cell)
		}
	}
	o, _ := ParseTestJSON(strings.NewReader(ev("skip", "TestA/x", "") + ev("skip", "TestA/y/z", "") + ev("pass", "TestA/y", "") +
		ev("pass", "TestA", "") + ev("pass", "TestB/x", "") + ev("pass", "TestB", "") + ev("skip", "TestC", "") + ev("pass", "", "")))
	if !reflect.DeepEqual(o.Passed, []string{"TestB"}) || !reflect.DeepEqual(o.Skipped, []string{"TestA/x", "TestA/y/z", "TestC"}) ||
		len(o.Failed) != 0 || o.Tests != 3 || o.Cell() != "pass (3 skipped)" {
		t.Errorf("passed %v skipped %v failed %v tests %d cell %q; want passed [TestB], skipped [TestA/x TestA/y/z TestC], 3 tests",
			o.Passed, o.Skipped, o.Failed, o.Tests, o.Cell())
	}
	m := NewMatrix()
	m.Kernels, m.Packages = []string{"7"}, []string{"p"}
	m.Set("7", "p", o)
	if md := m.Markdown("", ""); !strings.Contains(md, "| `p` | pass (3 skipped) |") || !strings.Contains(md, "`p` on 7: skipped: TestA/x, TestA/y/z, TestC") {
		t.Errorf("markdown does not show the skipped subtests:\n%s", md)
	}
}

func TestMatrixRender(t *testing.T) {
	m := NewMatrix()
	m.Kernels = []string{"6.1", "host"}
	m.Releases["6.1"] = "6.1.0-50-cloud-amd64"
	m.Packages = []string{ModulePath + "/pkg/a", ModulePath + "/pkg/b"}
	m.Set("6.1", ModulePath+"/pkg/a", &Outcome{Status: "pass", Passed: []string{"T"}})
	m.Set("host", ModulePath+"/pkg/a", &Outcome{Status: "pass", Skipped: []string{"TSkip"}, Passed: []string{"T"}})
	m.Set("6.1", ModulePath+"/pkg/b", &Outcome{Status: "fail", Failed: []string{"TBad"}})
	if !m.Failed() {
		t.Error("Failed() = false")
	}
	txt := m.Text(ModulePath + "/")
	for _, want := range []string{"pkg/a", "pass (1 skipped)", "FAIL (1/1)", "6.1=6.1.0-50-cloud-amd64"} {
		if !strings.Contains(txt, want) {
			t.Errorf("text lacks %q:\n%s", want, txt)
		}
	}
	md := m.Markdown(ModulePath+"/", "")
	for _, want := range []string{"| package | 6.1 (6.1.0-50-cloud-amd64) | host |", "| `pkg/b` | FAIL (1/1) | - |", "`pkg/b` on 6.1: failed: TBad"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestRunnerNote(t *testing.T) {
	for _, tc := range []struct {
		kernels       []string
		runner, accel string
		want          string
	}{
		{[]string{"6.1", "7", "host"}, "vng", "tcg",
			"Columns: `6.1`, `7`: runner `vng` (virtme-ng (`vng --run`), the guest sharing the host's filesystem; accelerator tcg; tests named TestHost* left out); `host`: no VM (the tests run directly on the machine)."},
		{[]string{"5.10"}, "qemu", "kvm", "Columns: `5.10`: runner `qemu` (qemu, booting vmtest's own initramfs; accelerator kvm; tests named TestHost* left out)."},
		{[]string{"host"}, "qemu", "tcg", "Columns: `host`: no VM (the tests run directly on the machine)."},
		{nil, "qemu", "tcg", ""},
	} {
		if got := RunnerNote(tc.kernels, tc.runner, tc.accel); got != tc.want {
			t.Errorf("RunnerNote(%v, %s, %s) =\n%s\nwant\n%s", tc.kernels, tc.runner, tc.accel, got, tc.want)
		}
	}
}
