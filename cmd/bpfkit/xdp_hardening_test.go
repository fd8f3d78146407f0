package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/bpfkit/bpfkit/internal/testkit"
	"github.com/bpfkit/bpfkit/pkg/xdp"
)

func init() {
	// Root in a mount namespace of its own with a fresh BPF filesystem
	// (mode 1777, as the kernel makes it): an unprivileged user plants
	// part of bpfkit's pin tree, then root runs `bpfkit xdp load vb`, and
	// the child prints every path left in the filesystem.
	testkit.Register("pin-attack", func(args []string) int {
		if err := unix.Mount("bpf", "/sys/fs/bpf", "bpf", 0, ""); err != nil {
			fmt.Fprintln(os.Stderr, "mount bpffs:", err)
			return 97
		}
		self, err := os.Executable()
		if err != nil {
			return 96
		}
		user := exec.Command(self, args[0])
		user.Env = append(os.Environ(), "BPFKIT_TEST_CHILD=pin-attacker")
		user.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		user.Stdout, user.Stderr = os.Stderr, os.Stderr
		if err := user.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "attacker:", err)
			return 96
		}
		os.Args = []string{"bpfkit", "xdp", "load", "vb"}
		code := run()
		filepath.WalkDir("/sys/fs/bpf", func(p string, _ fs.DirEntry, _ error) error {
			if !strings.HasSuffix(p, ".debug") { // the kernel's own maps.debug, progs.debug (bpf_preload)
				fmt.Println(p)
			}
			return nil
		})
		return code
	})
	// The unprivileged user (uid 65534) of pin-attack.
	testkit.Register("pin-attacker", func(args []string) int {
		var err error
		switch args[0] {
		case "dir":
			err = os.MkdirAll("/sys/fs/bpf/bpfkit/xdp", 0o777)
		case "symlink":
			if err = os.Mkdir("/sys/fs/bpf/mine", 0o777); err == nil {
				err = os.Symlink("/sys/fs/bpf/mine", "/sys/fs/bpf/bpfkit")
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	})
}

// TestXDPPinOwnership: a user who is not root creates bpfkit's pin tree
// (or a symbolic link in its place) before root's first load: root's load
// is refused with one line naming the path and the fix, and nothing is
// attached or pinned. It runs for real as uid 65534, in a mount namespace
// of its own with a fresh BPF filesystem, so that the machine's
// /sys/fs/bpf (where other filters may be pinned) is not touched.
func TestXDPPinOwnership(t *testing.T) {
	ns := xdpNS(t)
	for _, tc := range []struct{ variant, want, planted string }{
		{"dir", "bpfkit: /sys/fs/bpf/bpfkit is owned by uid 65534, not root: remove it (rm -r /sys/fs/bpf/bpfkit) and load again\n",
			"/sys/fs/bpf\n/sys/fs/bpf/bpfkit\n/sys/fs/bpf/bpfkit/xdp\n"},
		{"symlink", "bpfkit: /sys/fs/bpf/bpfkit is a symbolic link, not bpfkit's directory: remove it (rm -r /sys/fs/bpf/bpfkit) and load again\n",
			"/sys/fs/bpf\n/sys/fs/bpf/bpfkit\n/sys/fs/bpf/mine\n"},
	} {
		t.Run(tc.variant, func(t *testing.T) {
			cmd := testkit.Command(t, "pin-attack", tc.variant)
			testkit.AsUser(t, cmd, 65534, 65534) // a copy of the test binary uid 65534 may run
			cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
			stdout, stderr, code := runCmd(t, cmd, ns.Start)
			if code != 1 || stderr != tc.want {
				t.Errorf("exit %d, stderr %q, want %q", code, stderr, tc.want)
			}
			if stdout != tc.planted {
				t.Errorf("left in the BPF filesystem:\n%s\nwant only what the user planted:\n%s", stdout, tc.planted)
			}
			if id := xdpProgOn(t, ns, "vb"); id != 0 {
				t.Errorf("program %d attached", id)
			}
		})
	}
}

// TestXDPNotRoot: a process that is not root, even with every capability
// the filter needs (ambient), is refused pinned state with one line that
// names sudo and `bpfkit xdp run`.
func TestXDPNotRoot(t *testing.T) {
	ns := xdpNS(t)
	for _, args := range [][]string{
		{"xdp", "load", "vb"}, {"xdp", "rule", "list", "vb"}, {"xdp", "rule", "add", "vb", "--action", "drop"},
		{"xdp", "stats", "vb"}, {"xdp", "status"}, {"xdp", "unload", "vb"}, {"xdp", "redirect", "--from", "vb", "--to", "vb", "--force"},
	} {
		cmd := bpfkit(t, args...)
		testkit.AsUser(t, cmd, 65534, 65534)
		cmd.SysProcAttr.AmbientCaps = []uintptr{unix.CAP_BPF, unix.CAP_PERFMON, unix.CAP_NET_ADMIN, unix.CAP_SYS_ADMIN}
		_, stderr, code := runCmd(t, cmd, ns.Start)
		oneLineError(t, stderr, code, "root's alone", "sudo", "bpfkit xdp run")
		if id := xdpProgOn(t, ns, "vb"); id != 0 {
			t.Fatalf("%v: program %d attached", args, id)
		}
	}
}

// TestXDPBadInput: interface names, empty and repeated values, rule file
// errors that never repeat the file, hairpin redirects: one line each,
// nothing attached or pinned.
func TestXDPBadInput(t *testing.T) {
	ns := xdpNS(t)
	dir := t.TempDir()
	file := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	shadow := file("shadow", "root:*:20228:0:99999:7:::\n")
	empty := file("empty", "--proto udp --action drop\nsrc= action=drop\n")
	twice := file("twice", "--dport 53 --proto udp --dport 54 --action drop\n")
	secret := file("secret", "--src hunter2-secret-password --action drop\n")
	bad := "../../4026532245-va"
	badName := `interface name "../../4026532245-va" is 19 bytes long, at most 15 fit`
	for _, tc := range []struct {
		args  []string
		wants []string
		never string
	}{
		{[]string{"xdp", "load", bad}, []string{badName}, ""},
		{[]string{"xdp", "rule", "list", "../../1-va"}, []string{`interface name "../../1-va" contains '/' or ':'`}, ""},
		{[]string{"xdp", "rule", "add", "..", "--action", "drop"}, []string{`interface name ".." is not a name`}, ""},
		{[]string{"xdp", "rule", "del", "a:b", "1"}, []string{`contains '/' or ':'`}, ""},
		{[]string{"xdp", "rule", "load", "a b", empty}, []string{"contains white space"}, ""},
		{[]string{"xdp", "stats", bad}, []string{badName}, ""},
		{[]string{"xdp", "unload", bad}, []string{badName}, ""},
		{[]string{"xdp", "run", bad}, []string{badName}, ""},
		{[]string{"xdp", "redirect", "--from", bad, "--to", "vb"}, []string{badName}, ""},
		{[]string{"xdp", "redirect", "--from", "vb", "--to", bad}, []string{badName}, ""},
		{[]string{"xdp", "rule", "add", "vb", "--action", "redirect:" + bad}, []string{"redirect:IFACE needs the name of an interface"}, ""},
		{[]string{"xdp", "rule", "add", "vb", "--src", "", "--action", "drop"}, []string{"--src has an empty value"}, ""},
		{[]string{"xdp", "rule", "add", "vb", "--dport", "", "--proto", "udp", "--action", "drop"}, []string{"--dport has an empty value"}, ""},
		{[]string{"xdp", "rule", "add", "vb", "--src", "198.18.0.0/24", "--src", "198.19.0.0/24", "--action", "drop"}, []string{"--src is given twice"}, ""},
		{[]string{"xdp", "rule", "add", "vb", "--priority", "1", "--priority", "2", "--action", "drop"}, []string{"--priority is given twice"}, ""},
		{[]string{"xdp", "rule", "add", "vb", "--action", strings.Repeat("A", 100000)}, []string{`action "` + strings.Repeat("A", 40) + `"…`}, strings.Repeat("A", 41)},
		{[]string{"xdp", "load", "vb", "--rules", shadow}, []string{shadow + ": line 1: field 1: needs a value"}, "root"},
		{[]string{"xdp", "load", "vb", "--rules", empty}, []string{empty + ": line 2: field 1 (src): --src has an empty value"}, ""},
		{[]string{"xdp", "run", "vb", "--rules", twice}, []string{twice + ": line 1: field 3 (dport): --dport is given twice"}, ""},
		{[]string{"xdp", "load", "vb", "--rules", secret}, []string{secret + ": line 1: field 1 (src): address: use a CIDR"}, "hunter2"},
		{[]string{"xdp", "redirect", "--from", "vb", "--to", "vb"}, []string{"--from and --to are both vb", "hairpin", "--force"}, ""},
	} {
		r := bpfkitIn(t, ns, nil, tc.args...)
		oneLineError(t, r.stderr, r.code, tc.wants...)
		if tc.never != "" && strings.Contains(r.stderr, tc.never) {
			t.Errorf("%v: message repeats %q", tc.args, tc.never)
		}
		if id := xdpProgOn(t, ns, "vb"); id != 0 {
			t.Fatalf("%v left program %d attached", tc.args, id)
		}
		if _, err := os.Stat(pinDir(t, ns, "vb")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%v left pins", tc.args)
		}
	}
}

// TestXDPRuleSafety: rule del of the pass rule that shields the SSH
// session, or the default route's traffic from a drop rule, needs
// --force; ids are never reused; a rule added twice is warned about.
func TestXDPRuleSafety(t *testing.T) {
	ns := xdpNS(t)
	t.Cleanup(func() { bpfkitIn(t, ns, nil, "xdp", "unload", "vb") })
	ssh := []string{"SSH_CONNECTION=198.18.0.1 40000 198.18.0.2 22"}
	ok(t, bpfkitIn(t, ns, ssh, "xdp", "load", "vb"))
	add := func(env []string, args ...string) result {
		return bpfkitIn(t, ns, env, append([]string{"xdp", "rule", "add", "vb"}, args...)...)
	}
	if out := ok(t, add(ssh, "--src", "198.18.0.1", "--proto", "tcp", "--dport", "22", "--action", "pass")); out != "rule 1: --src 198.18.0.1/32 --proto tcp --dport 22 --action pass\n" {
		t.Errorf("add said %q", out)
	}
	ok(t, add(ssh, "--src", "198.18.0.0/24", "--action", "drop")) // 2: the pass rule shields the session
	r := bpfkitIn(t, ns, ssh, "xdp", "rule", "del", "vb", "1")
	oneLineError(t, r.stderr, r.code, `rule "--src 198.18.0.0/24 --action drop" would drop your SSH session from 198.18.0.1`, "--force")
	if out := ok(t, bpfkitIn(t, ns, nil, "xdp", "rule", "list", "vb")); strings.Count(out, "\n") != 3 {
		t.Errorf("refused del changed the rules:\n%s", out)
	}
	r = bpfkitIn(t, ns, ssh, "xdp", "rule", "del", "vb", "1", "--force")
	if r.code != 0 || r.stdout != "deleted rule 1\n" || !strings.Contains(r.stderr, "warning (--force)") {
		t.Errorf("forced del: %+v", r)
	}

	// The default route: a pass rule that shields its traffic from a drop.
	ns.DefaultRoute(t, "198.18.0.1", "vb")
	ok(t, add(nil, "--proto", "udp", "--dport", "53", "--action", "pass"))               // 3
	ok(t, add(nil, "--proto", "udp", "--dport", "1-100", "--action", "drop", "--force")) // 4
	r = bpfkitIn(t, ns, nil, "xdp", "rule", "del", "vb", "3")
	oneLineError(t, r.stderr, r.code, "vb carries the default route", "without rule 3", "would drop some of its traffic", "--force")
	ok(t, bpfkitIn(t, ns, nil, "xdp", "rule", "del", "vb", "4")) // deleting drop rules is safe
	ok(t, bpfkitIn(t, ns, nil, "xdp", "rule", "del", "vb", "2"))
	ok(t, bpfkitIn(t, ns, nil, "xdp", "rule", "del", "vb", "3")) // and then so is the pass rule

	// Ids are never reused: after 1..4, all deleted, the next is 5, and a
	// rule load continues from there. The same rule twice is warned about.
	ok(t, add(nil, "--src", "198.18.0.0/24", "--action", "drop", "--force"))
	r = add(nil, "--src", "198.18.0.0/24", "--action", "drop", "--force")
	if r.code != 0 || r.stdout != "rule 6: --src 198.18.0.0/24 --action drop\n" || !strings.Contains(r.stderr, "bpfkit: warning: rule 6 matches the same packets as rule 5 (--src 198.18.0.0/24 --action drop)\n") {
		t.Errorf("add after deletes: %+v", r)
	}
	rules := filepath.Join(t.TempDir(), "rules")
	os.WriteFile(rules, []byte("--proto icmp --action pass\n--proto icmp --action pass\n"), 0o600)
	r = bpfkitIn(t, ns, nil, "xdp", "rule", "load", "vb", rules)
	if r.code != 0 || !strings.Contains(r.stderr, "warning: rule 8 matches the same packets as rule 7") {
		t.Errorf("rule load: %+v", r)
	}
	out := ok(t, bpfkitIn(t, ns, nil, "xdp", "rule", "list", "vb", "-o", "json"))
	if !strings.HasPrefix(out, `{"id":7,`) || !strings.Contains(out, `{"id":8,`) || strings.Count(out, "\n") != 2 {
		t.Errorf("after rule load:\n%s", out)
	}
}

// TestXDPUnloadRace: rule adds race an unload: each either added its rule
// before the unload (and says so) or fails with one line; none says
// "rule N" for a filter that is gone, and nothing stays attached or
// pinned. A filter opened before an unload cannot be changed after it.
func TestXDPUnloadRace(t *testing.T) {
	ns := xdpNS(t)
	t.Cleanup(func() { bpfkitIn(t, ns, nil, "xdp", "unload", "vb") })
	for round := range 3 {
		ok(t, bpfkitIn(t, ns, nil, "xdp", "load", "vb"))
		var f *xdp.Filter
		if err := ns.Do(func() (err error) { f, err = xdp.Open("vb"); return err }); err != nil {
			t.Fatal(err)
		}
		const adders = 6
		results := make([]result, adders)
		var unloaded time.Time
		var wg sync.WaitGroup
		for i := range adders {
			wg.Go(func() {
				results[i] = bpfkitIn(t, ns, nil, "xdp", "rule", "add", "vb", "--proto", "udp", "--dport", fmt.Sprint(1000+i), "--action", "drop")
			})
		}
		wg.Go(func() {
			time.Sleep(time.Duration(round*20) * time.Millisecond)
			ok(t, bpfkitIn(t, ns, nil, "xdp", "unload", "vb"))
			unloaded = time.Now()
		})
		wg.Wait()
		_ = unloaded
		for i, r := range results {
			switch {
			case r.code == 0:
				if !strings.HasPrefix(r.stdout, "rule ") {
					t.Errorf("round %d add %d: %+v", round, i, r)
				}
			default:
				oneLineError(t, r.stderr, r.code)
				if !strings.Contains(r.stderr, "unloaded meanwhile") && !strings.Contains(r.stderr, "bpfkit has no filter on vb") {
					t.Errorf("round %d add %d failed for another reason: %q", round, i, r.stderr)
				}
			}
		}
		if _, err := f.AddRule(xdp.Rule{Action: xdp.Action{Kind: xdp.Drop}}, xdp.Guard{}); err == nil || !strings.Contains(err.Error(), "the filter on vb was unloaded meanwhile: nothing changed") {
			t.Errorf("round %d: a filter opened before the unload took a rule after it: %v", round, err)
		}
		f.Close()
		if id := xdpProgOn(t, ns, "vb"); id != 0 {
			t.Fatalf("round %d: program %d attached after unload", round, id)
		}
		if _, err := os.Stat(pinDir(t, ns, "vb")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("round %d: pins left", round)
		}
	}
}

// statusOf runs `xdp status -o json` in ns and returns the line of iface
// in netns ino.
func statusOf(t *testing.T, ns *testkit.NetNS, iface string, ino uint64) (xdp.Status, bool) {
	t.Helper()
	out := ok(t, bpfkitIn(t, ns, nil, "xdp", "status", "-o", "json"))
	for l := range strings.Lines(out) {
		var st xdp.Status
		if err := json.Unmarshal([]byte(l), &st); err != nil {
			t.Fatalf("status -o json line %q: %v", l, err)
		}
		if st.Iface == iface && st.Netns == ino {
			return st, true
		}
	}
	return xdp.Status{}, false
}

func netnsIno(t *testing.T, ns *testkit.NetNS) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(ns.Path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// TestXDPStaleState: under a loaded filter, the interface is deleted and
// made again, then (separately) the network namespace is deleted and a
// new one is made: status says stale, rule add and rule list refuse the
// state, load replaces it with a note, unload removes it.
func TestXDPStaleState(t *testing.T) {
	testkit.RequireRoot(t)
	a, b := testkit.NewNetNS(t, "sa"), testkit.NewNetNS(t, "sb")
	testkit.Veth(t, a, "va", "198.18.0.1/24", b, "vb", "198.18.0.2/24")
	t.Cleanup(func() { bpfkitIn(t, b, nil, "xdp", "unload", "vb") })
	ok(t, bpfkitIn(t, b, nil, "xdp", "load", "vb"))
	ok(t, bpfkitIn(t, b, nil, "xdp", "rule", "add", "vb", "--proto", "udp", "--action", "drop"))
	stale := func(ns *testkit.NetNS, ino uint64, why string) {
		t.Helper()
		st, found := statusOf(t, ns, "vb", ino)
		if !found || st.State != "stale: "+why || st.Attached {
			t.Errorf("status: %+v (found %v), want state %q", st, found, "stale: "+why)
		}
		for _, args := range [][]string{{"rule", "add", "vb", "--proto", "tcp", "--action", "drop"}, {"rule", "list", "vb"}, {"stats", "vb"}} {
			r := bpfkitIn(t, ns, nil, append([]string{"xdp"}, args...)...)
			oneLineError(t, r.stderr, r.code, "the state bpfkit kept for vb is stale ("+why+")", "`bpfkit xdp unload vb` removes it, `bpfkit xdp load vb` replaces it")
		}
	}

	// The interface is deleted and made again: a new ifindex, and the
	// link's device is gone (its ifindex reads 0).
	var oldIndex int
	if err := b.Do(func() error {
		l, err := netlink.LinkByName("vb")
		if err != nil {
			return err
		}
		oldIndex = l.Attrs().Index
		return netlink.LinkDel(l)
	}); err != nil {
		t.Fatal(err)
	}
	testkit.Veth(t, a, "va", "198.18.0.1/24", b, "vb", "198.18.0.2/24")
	ino := netnsIno(t, b)
	stale(b, ino, fmt.Sprintf("the interface it was attached to, ifindex %d, is gone", oldIndex))
	r := bpfkitIn(t, b, nil, "xdp", "load", "vb")
	if r.code != 0 || !strings.HasPrefix(r.stderr, "bpfkit: note: the state bpfkit kept for vb is stale (") || !strings.HasSuffix(r.stderr, "; replacing it\n") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("load over stale state: %+v", r)
	}
	if st, _ := statusOf(t, b, "vb", ino); st.State != "pinned" || !st.Attached || st.Rules != 0 {
		t.Errorf("status after load: %+v", st)
	}
	ok(t, bpfkitIn(t, b, nil, "xdp", "rule", "add", "vb", "--proto", "udp", "--action", "drop"))

	// The namespace is deleted and a new one is made with its name.
	if err := netns.DeleteNamed(b.Name); err != nil {
		t.Fatal(err)
	}
	c := &testkit.NetNS{Name: b.Name, Path: b.Path} // testkit deletes b's name at cleanup
	if err := newNamedNetns(c.Name); err != nil {
		t.Fatal(err)
	}
	// The kernel destroys a deleted namespace's devices in a work queue:
	// wait (at most 10 s) until va, the peer of b's vb, is gone.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		err := a.Do(func() error { _, err := netlink.LinkByName("va"); return err })
		if err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("va still there 10 s after its peer's namespace was deleted")
		}
	}
	testkit.Veth(t, a, "va", "198.18.0.1/24", c, "vb", "198.18.0.2/24")
	cIno := netnsIno(t, c)
	// Seen from elsewhere, b's state is stale: its namespace is gone.
	if st, found := statusOf(t, a, "vb", ino); !found || st.State != "stale: its network namespace is gone" && cIno != ino {
		t.Errorf("status of b's filter: %+v, found %v", st, found)
	}
	t.Logf("netns inode before %d, after %d (reused: %v)", ino, cIno, cIno == ino)
	if cIno != ino {
		// The kernel gave c another inode than b's (another namespace was
		// made meanwhile, on this shared machine): put b's state where an
		// inode reuse would have put it, so c finds it under its own inode.
		old := filepath.Join(xdp.PinRoot, fmt.Sprintf("%d-vb", ino))
		if err := os.Rename(old, filepath.Join(xdp.PinRoot, fmt.Sprintf("%d-vb", cIno))); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := statusOf(t, c, "vb", cIno)
	if !strings.HasPrefix(st.State, "stale: ") {
		t.Errorf("status in the new namespace: %+v", st)
	}
	why := strings.TrimPrefix(st.State, "stale: ")
	stale(c, cIno, why)
	if out := ok(t, bpfkitIn(t, c, nil, "xdp", "unload", "vb")); out != "removed the stale state of vb\n" {
		t.Errorf("unload of stale state said %q", out)
	}
	if _, found := statusOf(t, c, "vb", cIno); found {
		t.Errorf("stale state left after unload")
	}
	ok(t, bpfkitIn(t, c, nil, "xdp", "load", "vb"))
	if id := xdpProgOn(t, c, "vb"); id == 0 {
		t.Errorf("load in the new namespace attached nothing")
	}
}

// newNamedNetns makes a network namespace /run/netns/name.
func newNamedNetns(name string) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // the thread switches namespace: it dies with the goroutine
		created, err := netns.NewNamed(name)
		if err == nil {
			created.Close()
		}
		errc <- err
	}()
	return <-errc
}

// TestXDPForeground: while `bpfkit xdp run` holds an interface, status
// shows it with its pid (-o json too), and unload, rule add and load say
// how to stop it.
func TestXDPForeground(t *testing.T) {
	ns := xdpNS(t)
	rules := filepath.Join(t.TempDir(), "rules")
	os.WriteFile(rules, []byte("--proto udp --dport 9 --action drop\n"), 0o600)
	cmd := bpfkit(t, "xdp", "run", "vb", "--rules", rules)
	if err := ns.Start(cmd); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Signal(syscall.SIGTERM)
	waitAttached(t, ns, "vb")
	pid := cmd.Process.Pid
	st, found := statusOf(t, ns, "vb", netnsIno(t, ns))
	if !found || st.State != "foreground" || st.PID != pid || !st.Attached || st.Dir != "" {
		t.Errorf("status: %+v, found %v; want foreground, pid %d", st, found, pid)
	}
	out := ok(t, bpfkitIn(t, ns, nil, "xdp", "status"))
	if !strings.Contains(out, fmt.Sprintf("foreground (bpfkit xdp run, pid %d)", pid)) {
		t.Errorf("status:\n%s", out)
	}
	for _, args := range [][]string{{"unload", "vb"}, {"rule", "add", "vb", "--action", "drop"}, {"load", "vb"}} {
		r := bpfkitIn(t, ns, nil, append([]string{"xdp"}, args...)...)
		oneLineError(t, r.stderr, r.code, fmt.Sprintf("vb is held by `bpfkit xdp run` (pid %d) in the foreground", pid), fmt.Sprintf("kill %d", pid))
	}
}

// waitAttached waits until an XDP program runs on iface in ns: at most
// 10 s, or a minute under TCG, where loading and verifying the filter took
// over 10 s on 5.10 (a machine shared with other jobs).
func waitAttached(t *testing.T, ns *testkit.NetNS, iface string) {
	t.Helper()
	wait := 10 * time.Second
	if testkit.Emulated() {
		wait = time.Minute
	}
	for deadline := time.Now().Add(wait); xdpProgOn(t, ns, iface) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("run never attached in %s", wait)
		}
	}
}
