package testkit

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vishvananda/netns"
)

// NetNS is a network namespace that a test created; it is deleted, with
// its interfaces, when the test ends, also on failure.
type NetNS struct {
	Name string
	Path string // /run/netns/NAME
}

var nsSeq atomic.Uint32

// NewNetNS creates a network namespace with loopback up.
func NewNetNS(t testing.TB, tag string) *NetNS {
	t.Helper()
	RequireRoot(t)
	name := fmt.Sprintf("bpfkit-%s-%d-%d", tag, os.Getpid(), nsSeq.Add(1))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	ns := &NetNS{Name: name, Path: "/run/netns/" + name}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	ns.IP(t, "link", "set", "lo", "up")
	return ns
}

// IP runs `ip -n NAME args...` and fails the test if it fails.
func (n *NetNS) IP(t testing.TB, args ...string) {
	t.Helper()
	args = append([]string{"-n", n.Name}, args...)
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// Do runs fn on a thread switched into the namespace. Sockets and links
// that fn creates stay in the namespace afterwards.
func (n *NetNS) Do(fn func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	target, err := netns.GetFromPath(n.Path)
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		// Leave the thread locked: the runtime drops it with the goroutine.
		return fmt.Errorf("return to the test's namespace: %w", err)
	}
	runtime.UnlockOSThread()
	return ferr
}

// Wrap makes cmd run inside the namespace (with nsenter, which, unlike
// `ip netns exec`, keeps the mounts, /sys/fs/bpf included).
func (n *NetNS) Wrap(cmd *exec.Cmd) *exec.Cmd {
	cmd.Args = append([]string{"nsenter", "--net=" + n.Path, "--", cmd.Path}, cmd.Args[1:]...)
	cmd.Path, _ = exec.LookPath("nsenter")
	return cmd
}

// Veth connects namespaces a and b with a veth pair, names the ends, gives
// them addresses (CIDR, empty for none) and brings them up.
func Veth(t testing.TB, a *NetNS, aName, aAddr string, b *NetNS, bName, bAddr string) {
	t.Helper()
	a.IP(t, "link", "add", aName, "type", "veth", "peer", "name", bName, "netns", b.Name)
	for _, end := range []struct {
		ns         *NetNS
		name, addr string
	}{{a, aName, aAddr}, {b, bName, bAddr}} {
		if end.addr != "" {
			end.ns.IP(t, "addr", "add", end.addr, "dev", end.name)
		}
		end.ns.IP(t, "link", "set", end.name, "up")
	}
}
