package testkit

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NetNS is a network namespace that a test created; it is deleted, with
// its interfaces, when the test ends, also on failure. Everything here is
// done through netlink, so tests need no `ip` binary (there is none in the
// VMs of vmtest).
type NetNS struct {
	Name string
	Path string // /run/netns/NAME
}

var nsSeq atomic.Uint32

// NewNetNS creates a named network namespace with loopback up.
func NewNetNS(t testing.TB, tag string) *NetNS {
	t.Helper()
	RequireRoot(t)
	name := fmt.Sprintf("bpfkit-%s-%d-%d", tag, os.Getpid(), nsSeq.Add(1))
	if err := onThread(func() error {
		orig, err := netns.Get()
		if err != nil {
			return err
		}
		defer orig.Close()
		created, err := netns.NewNamed(name) // switches this thread into it
		if err != nil {
			return fmt.Errorf("create netns %s: %w", name, err)
		}
		created.Close()
		return netns.Set(orig)
	}); err != nil {
		t.Fatal(err)
	}
	ns := &NetNS{Name: name, Path: "/run/netns/" + name}
	t.Cleanup(func() {
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete netns %s: %v", name, err)
		}
	})
	ns.must(t, func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(lo)
	})
	return ns
}

// onThread runs fn locked to one OS thread. If fn fails to restore the
// thread's namespace, the thread stays locked and dies with the goroutine.
func onThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		errc <- fn()
	}()
	return <-errc
}

// Do runs fn on a thread switched into the namespace. Sockets and links
// that fn creates stay in the namespace afterwards.
func (n *NetNS) Do(fn func() error) error {
	target, err := netns.GetFromPath(n.Path)
	if err != nil {
		return err
	}
	defer target.Close()
	return onThread(func() error {
		orig, err := netns.Get()
		if err != nil {
			return err
		}
		defer orig.Close()
		if err := netns.Set(target); err != nil {
			return err
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			return fmt.Errorf("return to the test's namespace: %w", err)
		}
		runtime.UnlockOSThread()
		return ferr
	})
}

func (n *NetNS) must(t testing.TB, fn func() error) {
	t.Helper()
	if err := n.Do(fn); err != nil {
		t.Fatalf("in netns %s: %v", n.Name, err)
	}
}

// Start starts cmd inside the namespace: it is forked from a thread that
// has entered it, so the whole child process lives there, with the test's
// mounts (/sys/fs/bpf included).
func (n *NetNS) Start(cmd *exec.Cmd) error {
	return n.Do(cmd.Start)
}

// SetMAC sets an interface's hardware address.
func (n *NetNS) SetMAC(t testing.TB, iface string, mac net.HardwareAddr) {
	t.Helper()
	n.must(t, func() error {
		l, err := netlink.LinkByName(iface)
		if err != nil {
			return err
		}
		return netlink.LinkSetHardwareAddr(l, mac)
	})
}

// DefaultRoute routes everything through gateway on iface.
func (n *NetNS) DefaultRoute(t testing.TB, gateway, iface string) {
	t.Helper()
	n.must(t, func() error {
		l, err := netlink.LinkByName(iface)
		if err != nil {
			return err
		}
		return netlink.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: net.ParseIP(gateway)})
	})
}

// Veth connects namespaces a and b with a veth pair, names the ends, gives
// them addresses (CIDR, empty for none) and brings them up.
func Veth(t testing.TB, a *NetNS, aName, aAddr string, b *NetNS, bName, bAddr string) {
	t.Helper()
	peer, err := netns.GetFromPath(b.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	a.must(t, func() error {
		return netlink.LinkAdd(&netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: aName},
			PeerName:      bName,
			PeerNamespace: netlink.NsFd(peer),
		})
	})
	for _, end := range []struct {
		ns         *NetNS
		name, addr string
	}{{a, aName, aAddr}, {b, bName, bAddr}} {
		end.ns.must(t, func() error {
			l, err := netlink.LinkByName(end.name)
			if err != nil {
				return err
			}
			if end.addr != "" {
				if err := addAddr(l, end.addr); err != nil {
					return err
				}
			}
			return netlink.LinkSetUp(l)
		})
	}
}

// AddAddr gives iface one more address (CIDR). An IPv6 address skips
// duplicate address detection, so it is usable at once.
func (n *NetNS) AddAddr(t testing.TB, iface, cidr string) {
	t.Helper()
	n.must(t, func() error {
		l, err := netlink.LinkByName(iface)
		if err != nil {
			return err
		}
		return addAddr(l, cidr)
	})
}

func addAddr(l netlink.Link, cidr string) error {
	addr, err := netlink.ParseAddr(cidr)
	if err != nil {
		return err
	}
	if addr.IP.To4() == nil {
		addr.Flags = unix.IFA_F_NODAD
	}
	if err := netlink.AddrAdd(l, addr); err != nil {
		return fmt.Errorf("address %s on %s: %w", cidr, l.Attrs().Name, err)
	}
	return nil
}

// MAC returns an interface's hardware address.
func (n *NetNS) MAC(t testing.TB, iface string) net.HardwareAddr {
	t.Helper()
	return n.attrs(t, iface).HardwareAddr
}

// Index is an interface's index in the namespace.
func (n *NetNS) Index(t testing.TB, iface string) int {
	t.Helper()
	return n.attrs(t, iface).Index
}

func (n *NetNS) attrs(t testing.TB, iface string) *netlink.LinkAttrs {
	t.Helper()
	var attrs *netlink.LinkAttrs
	n.must(t, func() error {
		l, err := netlink.LinkByName(iface)
		if err == nil {
			attrs = l.Attrs()
		}
		return err
	})
	return attrs
}

// Neighbor adds a permanent neighbour (ARP or NDP) entry: ip is at mac on
// iface, so no neighbour discovery goes out for it.
func (n *NetNS) Neighbor(t testing.TB, iface, ip string, mac net.HardwareAddr) {
	t.Helper()
	n.must(t, func() error {
		l, err := netlink.LinkByName(iface)
		if err != nil {
			return err
		}
		addr := net.ParseIP(ip)
		family := netlink.FAMILY_V6
		if addr.To4() != nil {
			family = netlink.FAMILY_V4
		}
		return netlink.NeighSet(&netlink.Neigh{LinkIndex: l.Attrs().Index, Family: family,
			State: netlink.NUD_PERMANENT, IP: addr, HardwareAddr: mac})
	})
}

// Counter reads a counter of the namespace's /proc/net/snmp (file "snmp",
// prefix "Tcp", "Udp", ...) or /proc/net/netstat ("netstat", "TcpExt"),
// such as Tcp RetransSegs or Udp NoPorts.
func (n *NetNS) Counter(t testing.TB, file, prefix, name string) uint64 {
	t.Helper()
	var raw []byte
	n.must(t, func() (err error) {
		raw, err = os.ReadFile("/proc/thread-self/net/" + file)
		return err
	})
	lines := strings.Split(string(raw), "\n")
	for i := 0; i+1 < len(lines); i++ {
		keys, vals := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(keys) == 0 || keys[0] != prefix+":" || len(vals) != len(keys) {
			continue
		}
		for j, k := range keys {
			if k == name {
				v, err := strconv.ParseUint(vals[j], 10, 64)
				if err != nil {
					t.Fatalf("%s %s in /proc/net/%s: %v", prefix, name, file, err)
				}
				return v
			}
		}
	}
	t.Fatalf("no %s %s in /proc/net/%s", prefix, name, file)
	return 0
}

// NoIPv6 turns IPv6 off in the namespace (for its interfaces to come, and
// those there now), so that no router solicitation or MLD report crosses
// its links while a test counts packets.
func (n *NetNS) NoIPv6(t testing.TB) {
	t.Helper()
	n.must(t, func() error {
		for _, f := range []string{"all", "default"} {
			if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+f+"/disable_ipv6", []byte("1"), 0); err != nil {
				return err
			}
		}
		return nil
	})
}

// Inode is the namespace's inode: its identity in /proc/PID/ns/net and in
// what the tracers report.
func (n *NetNS) Inode(t testing.TB) uint32 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(n.Path, &st); err != nil {
		t.Fatal(err)
	}
	return uint32(st.Ino)
}

// QuietPair makes two namespaces, tag-a and tag-b, joined by a veth (va in
// a, vb in b) with IPv4 addresses prefix.1/24 and prefix.2/24 (prefix such
// as "198.18.14"), IPv6 off and permanent neighbours both ways: nothing but
// what the test sends crosses it (no router solicitation, MLD, ARP).
func QuietPair(t testing.TB, tag, prefix string) (a, b *NetNS) {
	t.Helper()
	a, b = NewNetNS(t, tag+"-a"), NewNetNS(t, tag+"-b")
	a.NoIPv6(t)
	b.NoIPv6(t)
	Veth(t, a, "va", prefix+".1/24", b, "vb", prefix+".2/24")
	a.Neighbor(t, "va", prefix+".2", b.MAC(t, "vb"))
	b.Neighbor(t, "vb", prefix+".1", a.MAC(t, "va"))
	return a, b
}
