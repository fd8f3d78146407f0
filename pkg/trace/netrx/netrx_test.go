package netrx

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bpfkit/bpfkit/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// inNetnsSysfs writes value to path (relative to /sys) as seen from ns:
// sysfs shows a namespace's interfaces only in a sysfs mounted from it, so
// this mounts one in a private mount namespace, on a thread that is never
// given back to the Go scheduler (it dies with its namespaces).
func inNetnsSysfs(t *testing.T, ns *testkit.NetNS, path, value string) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		errc <- func() error {
			if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
				return fmt.Errorf("unshare mount namespace: %w", err)
			}
			if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
				return fmt.Errorf("make mounts private: %w", err)
			}
			fd, err := unix.Open(ns.Path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
				return fmt.Errorf("enter %s: %w", ns.Name, err)
			}
			dir, err := os.MkdirTemp("", "bpfkit-sysfs-")
			if err != nil {
				return err
			}
			defer os.Remove(dir)
			if err := unix.Mount("sysfs", dir, "sysfs", 0, ""); err != nil {
				return fmt.Errorf("mount sysfs: %w", err)
			}
			defer unix.Unmount(dir, unix.MNT_DETACH)
			return os.WriteFile(filepath.Join(dir, path), []byte(value), 0)
		}()
	}()
	if err := <-errc; err != nil {
		t.Fatalf("write %s in %s: %v", path, ns.Name, err)
	}
}

// TestRPS: with rps_cpus of vb's RX queue set to one CPU, every datagram
// a sends is received by the stack on that CPU, whichever CPU sent it:
// exactly n packets of exactly n*(IP+UDP header+payload) bytes on vb on
// that CPU, none on another. Then the same with the other CPU.
func TestRPS(t *testing.T) {
	testkit.RequireRoot(t)
	cpus := runtime.NumCPU()
	if cpus < 2 {
		testkit.Skip(t, "needs 2 CPUs, has %d", cpus)
	}
	tr, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	a := testkit.NewNetNS(t, "netrx-a")
	b := testkit.NewNetNS(t, "netrx-b")
	a.NoIPv6(t)
	b.NoIPv6(t)
	testkit.Veth(t, a, "va", "198.18.14.1/24", b, "vb", "198.18.14.2/24")
	a.Neighbor(t, "va", "198.18.14.2", b.MAC(t, "vb"))
	b.Neighbor(t, "vb", "198.18.14.1", a.MAC(t, "va"))
	var st unix.Stat_t
	if err := unix.Stat(b.Path, &st); err != nil {
		t.Fatal(err)
	}
	bNetns := uint32(st.Ino)

	const n, payload = 100, 100
	for _, cpu := range []int{0, 1} {
		inNetnsSysfs(t, b, "class/net/vb/queues/rx-0/rps_cpus", strconv.FormatUint(1<<cpu, 16))
		if _, err := tr.Delta(); err != nil { // the baseline
			t.Fatal(err)
		}
		if err := a.Do(func() error {
			c, err := net.ListenPacket("udp", "198.18.14.1:0")
			if err != nil {
				return err
			}
			defer c.Close()
			to := &net.UDPAddr{IP: net.ParseIP("198.18.14.2"), Port: 9}
			for range n {
				if _, err := c.WriteTo(make([]byte, payload), to); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		per := map[uint32]Count{}
		var total uint64
		// The backlog is processed in a softirq after the sends return:
		// wait for all n (5 s at most), then 200 ms for any extra.
		var all time.Time // when all n were counted
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			d, err := tr.Delta()
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range d {
				if c.Netns == bNetns && c.Iface == "vb" {
					p := per[c.CPU]
					p.Packets += c.Packets
					p.Bytes += c.Bytes
					per[c.CPU] = p
					total += c.Packets
				}
			}
			if total >= n && all.IsZero() {
				all = time.Now()
			}
			if !all.IsZero() && time.Since(all) > 200*time.Millisecond || time.Now().After(deadline) {
				break
			}
		}
		for c, got := range per {
			want := Count{}
			if int(c) == cpu {
				want = Count{Packets: n, Bytes: n * (20 + 8 + payload)}
			}
			if got.Packets != want.Packets || got.Bytes != want.Bytes {
				t.Errorf("rps_cpus=CPU %d: CPU %d received %d packets, %d bytes on vb; want %d, %d",
					cpu, c, got.Packets, got.Bytes, want.Packets, want.Bytes)
			}
		}
		if per[uint32(cpu)].Packets != n {
			t.Errorf("rps_cpus=CPU %d: it received %d packets on vb, want %d (all: %+v)", cpu, per[uint32(cpu)].Packets, n, per)
		}
	}
}
