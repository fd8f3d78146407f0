package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/bpfkit/bpfkit/internal/testkit"
	"github.com/bpfkit/bpfkit/pkg/xdp"
)

type result struct {
	stdout, stderr string
	code           int
}

// bpfkitIn runs the CLI (this test binary re-executed) inside ns.
func bpfkitIn(t *testing.T, ns *testkit.NetNS, env []string, args ...string) result {
	t.Helper()
	cmd := bpfkit(t, args...)
	cmd.Env = append(cmd.Env, env...)
	stdout, stderr, code := runCmd(t, cmd, ns.Start)
	return result{stdout: stdout, stderr: stderr, code: code}
}

func ok(t *testing.T, r result) string {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	return r.stdout
}

// xdpProgOn reports the id of the XDP program on iface in ns, 0 for none.
func xdpProgOn(t *testing.T, ns *testkit.NetNS, iface string) uint32 {
	t.Helper()
	var id uint32
	if err := ns.Do(func() error {
		l, err := netlink.LinkByName(iface)
		if err != nil {
			return err
		}
		if x := l.Attrs().Xdp; x != nil && x.Attached {
			id = x.ProgId
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return id
}

func pinDir(t *testing.T, ns *testkit.NetNS, iface string) string {
	t.Helper()
	var dir string
	if err := ns.Do(func() (err error) { dir, err = xdp.PinDir(iface); return err }); err != nil {
		t.Fatal(err)
	}
	return dir
}

func xdpNS(t *testing.T) *testkit.NetNS {
	t.Helper()
	testkit.RequireRoot(t)
	a, b := testkit.NewNetNS(t, "ca"), testkit.NewNetNS(t, "cb")
	testkit.Veth(t, a, "va", "198.18.0.1/24", b, "vb", "198.18.0.2/24")
	return b
}

// TestXDPPinnedLifecycle: load, rules, list, stats, status and unload as
// separate invocations; the same interface name in two namespaces.
func TestXDPPinnedLifecycle(t *testing.T) {
	ns := xdpNS(t)
	other := xdpNS(t) // also has a "vb"
	dir := pinDir(t, ns, "vb")
	t.Cleanup(func() {
		bpfkitIn(t, ns, nil, "xdp", "unload", "vb")
		bpfkitIn(t, other, nil, "xdp", "unload", "vb")
	})

	out := ok(t, bpfkitIn(t, ns, nil, "xdp", "load", "vb"))
	if out != "attached to vb in native mode, policy deny, 0 rules\n" {
		t.Errorf("load said %q", out)
	}
	ok(t, bpfkitIn(t, other, nil, "xdp", "load", "vb", "--mode", "generic"))
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("pin dir %s: %v %v", dir, st, err)
	}
	if xdpProgOn(t, ns, "vb") == 0 {
		t.Fatal("no XDP program after load")
	}
	if r := bpfkitIn(t, ns, nil, "xdp", "load", "vb"); r.code == 0 || !strings.Contains(r.stderr, "bpfkit already has a filter on vb: `bpfkit xdp unload vb` first") {
		t.Errorf("second load: %+v", r)
	}

	out = ok(t, bpfkitIn(t, ns, nil, "xdp", "rule", "add", "vb", "--src", "198.18.0.0/24", "--proto", "udp", "--dport", "53", "--action", "drop"))
	if out != "rule 1: --src 198.18.0.0/24 --proto udp --dport 53 --action drop\n" {
		t.Errorf("rule add said %q", out)
	}
	ok(t, bpfkitIn(t, ns, nil, "xdp", "rule", "add", "vb", "--dst", "2001:db8::/32", "--priority", "3", "--action", "pass"))
	out = ok(t, bpfkitIn(t, ns, nil, "xdp", "rule", "list", "vb", "-o", "json"))
	want := `{"id":1,"src":"198.18.0.0/24","dst":null,"proto":"udp","sport":null,"dport":"53","priority":0,"action":"drop"}
{"id":2,"src":null,"dst":"2001:db8::/32","proto":null,"sport":null,"dport":null,"priority":3,"action":"pass"}
`
	if out != want {
		t.Errorf("rule list -o json:\n%s\nwant:\n%s", out, want)
	}
	ok(t, bpfkitIn(t, ns, nil, "xdp", "rule", "del", "vb", "2"))

	out = ok(t, bpfkitIn(t, ns, nil, "xdp", "stats", "vb", "-o", "json"))
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("stats -o json: %q", out)
	}
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		if _, ok := m["packets"]; !ok {
			t.Errorf("no packets in %q", l)
		}
		if _, ok := m["bytes"]; !ok {
			t.Errorf("no bytes in %q", l)
		}
	}
	if !strings.HasPrefix(lines[0], `{"id":1,"src":"198.18.0.0/24"`) || !strings.HasPrefix(lines[1], `{"id":"default","action":"pass"`) {
		t.Errorf("stats lines: %q", lines)
	}

	rules := filepath.Join(t.TempDir(), "rules")
	os.WriteFile(rules, []byte("# two rules\n--proto icmp --action drop\nsrc 198.18.0.1 action pass\n"), 0o600)
	ok(t, bpfkitIn(t, ns, nil, "xdp", "rule", "load", "vb", rules))
	out = ok(t, bpfkitIn(t, ns, nil, "xdp", "rule", "list", "vb"))
	if !strings.Contains(out, "icmp") || strings.Contains(out, "udp") || strings.Count(out, "\n") != 3 {
		t.Errorf("after rule load:\n%s", out)
	}

	out = ok(t, bpfkitIn(t, ns, nil, "xdp", "status"))
	if strings.Count(out, "vb ") < 2 || !strings.Contains(out, "generic") || !strings.Contains(out, "native") {
		t.Errorf("status:\n%s", out)
	}

	ok(t, bpfkitIn(t, ns, nil, "xdp", "unload", "vb"))
	if id := xdpProgOn(t, ns, "vb"); id != 0 {
		t.Errorf("program %d still attached after unload", id)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pins remain after unload: %v", err)
	}
	if xdpProgOn(t, other, "vb") == 0 {
		t.Errorf("unload in one namespace detached the other's filter")
	}
	ok(t, bpfkitIn(t, other, nil, "xdp", "unload", "vb"))
	if xdpProgOn(t, other, "vb") != 0 {
		t.Errorf("still attached in the other namespace")
	}
}

// TestXDPRunKilled: the foreground form detaches when killed with SIGKILL
// and pins nothing.
func TestXDPRunKilled(t *testing.T) {
	ns := xdpNS(t)
	rules := filepath.Join(t.TempDir(), "rules")
	os.WriteFile(rules, []byte("--proto udp --dport 9 --action drop\n"), 0o600)
	cmd := bpfkit(t, "xdp", "run", "vb", "--rules", rules)
	if err := ns.Start(cmd); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitAttached(t, ns, "vb")
	if _, err := os.Stat(pinDir(t, ns, "vb")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("run pinned state: %v", err)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for xdpProgOn(t, ns, "vb") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("still attached 10s after SIGKILL")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestXDPErrors: one line each, non-zero exit, nothing attached or pinned.
func TestXDPErrors(t *testing.T) {
	ns := xdpNS(t)
	ssh := []string{"SSH_CONNECTION=198.18.0.1 40000 198.18.0.2 22"}
	for _, tc := range []struct {
		env  []string
		args []string
		want string
	}{
		{nil, []string{"xdp", "load", "nope0"}, `bpfkit: interface "nope0" not found (` + "`ip link`" + ` lists the interfaces)`},
		{nil, []string{"xdp", "load", "vb", "--mode", "turbo"}, `bpfkit: mode "turbo": use auto, native or generic`},
		{nil, []string{"xdp", "rule", "add", "vb", "--src", "198.18.0.0/33", "--action", "drop"}, `bpfkit: CIDR "198.18.0.0/33": use a prefix such as 198.18.0.0/15 or 2001:db8::/32`},
		{nil, []string{"xdp", "rule", "add", "vb", "--dport", "65536", "--action", "drop"}, `bpfkit: port "65536": out of range: ports go from 1 to 65535, low to high`},
		{nil, []string{"xdp", "rule", "add", "vb", "--action", "drop"}, "bpfkit: bpfkit has no filter on vb in this network namespace: `bpfkit xdp load vb` first"},
		{nil, []string{"xdp", "redirect", "--from", "vb", "--to", "nope1"}, `bpfkit: redirect target: interface "nope1" not found (` + "`ip link`" + ` lists the interfaces)`},
		{nil, []string{"xdp", "load", "vb", "--policy", "allow"}, "bpfkit: --policy allow drops every packet on vb that no rule passes: add --force if that is what you want"},
		{ssh, []string{"xdp", "redirect", "--from", "vb", "--to", "va"}, `bpfkit: rule "--action redirect:va" would redirect (to va) your SSH session from 198.18.0.1 (if it arrives on vb): add --force if that is what you want`},
	} {
		r := bpfkitIn(t, ns, tc.env, tc.args...)
		if r.code != 1 || strings.TrimSpace(r.stderr) != tc.want {
			t.Errorf("%v: exit %d, stderr %q, want %q", tc.args, r.code, r.stderr, tc.want)
		}
		if id := xdpProgOn(t, ns, "vb"); id != 0 {
			t.Fatalf("%v left program %d attached", tc.args, id)
		}
		if _, err := os.Stat(pinDir(t, ns, "vb")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%v left pins", tc.args)
		}
	}

	// Under `ip netns exec`, pins would go to a bpffs private to bpfkit's
	// mount namespace and vanish with it: refused, naming nsenter.
	cmd := testkit.Command(t, "bpfkit-ipnetns", ns.Name, "xdp", "load", "vb")
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS} // Go makes / private in it
	_, stderr, code := runCmd(t, cmd, ns.Start)
	want := "bpfkit: /sys/fs/bpf is not mounted in this private mount namespace (as under `ip netns exec`), so pinned state would vanish when bpfkit exits: " +
		"enter the namespace with `nsenter --net=/run/netns/NAME bpfkit ...` instead, or use `bpfkit xdp run`"
	if code != 1 || strings.TrimSpace(stderr) != want {
		t.Errorf("under ip netns exec: exit %d, stderr %q", code, stderr)
	}
	if id := xdpProgOn(t, ns, "vb"); id != 0 {
		t.Fatalf("under ip netns exec: left program %d attached", id)
	}

	// A rule that would drop this SSH session needs --force.
	t.Cleanup(func() { bpfkitIn(t, ns, nil, "xdp", "unload", "vb") })
	ok(t, bpfkitIn(t, ns, nil, "xdp", "load", "vb"))
	r := bpfkitIn(t, ns, ssh, "xdp", "rule", "add", "vb", "--src", "198.18.0.0/24", "--proto", "tcp", "--action", "drop")
	want = `bpfkit: rule "--src 198.18.0.0/24 --proto tcp --action drop" would drop your SSH session from 198.18.0.1 (if it arrives on vb): add --force if that is what you want`
	if r.code != 1 || strings.TrimSpace(r.stderr) != want {
		t.Errorf("ssh rule: exit %d, %q", r.code, r.stderr)
	}
	ok(t, bpfkitIn(t, ns, ssh, "xdp", "rule", "add", "vb", "--src", "198.18.0.0/24", "--proto", "tcp", "--dport", "80", "--action", "drop"))
	out := ok(t, bpfkitIn(t, ns, ssh, "xdp", "rule", "add", "vb", "--src", "198.18.0.0/24", "--proto", "tcp", "--action", "drop", "--force"))
	if out != "rule 2: --src 198.18.0.0/24 --proto tcp --action drop\n" {
		t.Errorf("forced add said %q", out)
	}

	// A drop rule on the interface of the default route needs --force.
	ns.DefaultRoute(t, "198.18.0.1", "vb")
	r = bpfkitIn(t, ns, nil, "xdp", "rule", "add", "vb", "--proto", "udp", "--dport", "9", "--action", "drop")
	want = `bpfkit: vb carries the default route, and rule "--proto udp --dport 9 --action drop" would drop some of its traffic: add --force if that is what you want`
	if r.code != 1 || strings.TrimSpace(r.stderr) != want {
		t.Errorf("default route: exit %d, %q", r.code, r.stderr)
	}
	ok(t, bpfkitIn(t, ns, nil, "xdp", "rule", "add", "vb", "--proto", "udp", "--dport", "9", "--action", "drop", "--force"))
	ok(t, bpfkitIn(t, ns, nil, "xdp", "rule", "add", "vb", "--proto", "udp", "--dport", "10", "--action", "pass"))
}
