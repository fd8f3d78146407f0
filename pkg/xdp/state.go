package xdp

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// pinState is what a filter's pin directory was made for, and its rule id
// counter. It lives in a one-entry array map of its own ("state"), created
// by Load, pinned with the others.
type pinState struct {
	NetnsIno    uint64 // the network namespace's inode (reused once the namespace is gone)
	NetnsCookie uint64 // SO_NETNS_COOKIE: never reused; 0 where the kernel lacks it (before 5.14)
	Ifindex     uint32 // the interface the link was attached to
	ProgID      uint32 // the program the link holds
	NextID      uint32 // the next rule id: ids are never reused in a filter's life
	Flags       uint32 // reserved
}

func stateSpec() *ebpf.MapSpec {
	return &ebpf.MapSpec{Name: "xdpf_state", Type: ebpf.Array, KeySize: 4, ValueSize: 32, MaxEntries: 1}
}

func (f *Filter) readState() (pinState, error) {
	var s pinState
	if err := f.state.Lookup(uint32(0), &s); err != nil {
		return s, fmt.Errorf("read the filter's state: %w", err)
	}
	return s, nil
}

func (f *Filter) writeState(s pinState) error {
	if err := f.state.Put(uint32(0), &s); err != nil {
		return fmt.Errorf("write the filter's state: %w", err)
	}
	return nil
}

// netnsID is the identity of the current network namespace: its inode,
// and its cookie where the kernel has SO_NETNS_COOKIE (5.14+; 0 before).
func netnsID() (ino, cookie uint64, err error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		return 0, 0, fmt.Errorf("find the network namespace: %w", err)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("probe the network namespace's cookie: %w", err)
	}
	defer unix.Close(fd)
	c, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
	if err != nil {
		if errors.Is(err, unix.ENOPROTOOPT) {
			return st.Ino, 0, nil
		}
		return 0, 0, fmt.Errorf("read the network namespace's cookie: %w", err)
	}
	return st.Ino, c, nil
}

// staleError says why a filter's pinned state no longer describes the
// interface it names.
type staleError struct {
	iface, why string
}

func (e *staleError) Error() string {
	return fmt.Sprintf("the state bpfkit kept for %s is stale (%s): `bpfkit xdp unload %s` removes it, `bpfkit xdp load %s` replaces it", e.iface, e.why, e.iface, e.iface)
}

// IsStale reports whether err says a filter's state is stale.
func IsStale(err error) bool {
	var s *staleError
	return errors.As(err, &s)
}

// verify checks, in the current network namespace, that the pinned state
// still describes the interface it names: the same namespace (inode and,
// where the kernel has it, cookie, which is never reused), an interface of
// that name with the ifindex the state was made for, the link still
// attached to that ifindex (a link's device is gone when its ifindex
// reads 0), and that interface running the link's program (program ids are
// not reused either, and a link sits on one device only). The last check
// alone binds the state to this very device on kernels without netns
// cookies (5.10).
func (f *Filter) verify() error {
	st, err := f.readState()
	if err != nil {
		return err
	}
	stale := func(format string, args ...any) error {
		return &staleError{iface: f.Iface, why: fmt.Sprintf(format, args...)}
	}
	ino, cookie, err := netnsID()
	if err != nil {
		return err
	}
	if st.NetnsIno != ino || (st.NetnsCookie != 0 && st.NetnsCookie != cookie) {
		return stale("made for a network namespace that is gone; this one reuses its inode %d", ino)
	}
	if f.link == nil {
		return stale("its link is not pinned")
	}
	info, err := f.link.Info()
	if err != nil {
		return fmt.Errorf("read the link of %s: %w", f.Iface, err)
	}
	linkIfindex := uint32(0)
	if x := info.XDP(); x != nil {
		linkIfindex = x.Ifindex
	}
	if linkIfindex == 0 {
		return stale("the interface it was attached to, ifindex %d, is gone", st.Ifindex)
	}
	l, err := netlink.LinkByName(f.Iface)
	if err != nil {
		return stale("no interface %s here now; the filter is on ifindex %d", f.Iface, linkIfindex)
	}
	if idx := uint32(l.Attrs().Index); idx != st.Ifindex || idx != linkIfindex {
		return stale("%s is now ifindex %d; the filter was made for ifindex %d", f.Iface, idx, st.Ifindex)
	}
	if x := l.Attrs().Xdp; x == nil || x.ProgId != st.ProgID || uint32(info.Program) != st.ProgID {
		return stale("%s does not run the filter's program %d", f.Iface, st.ProgID)
	}
	f.Ifindex = int(linkIfindex)
	return nil
}

// inNetns runs fn in the network namespace with inode ino, found among
// /run/netns and the processes' namespaces. found is false when no such
// namespace exists any more.
func inNetns(ino uint64, fn func() error) (found bool, err error) {
	var path string
	candidates, _ := filepath.Glob("/run/netns/*")
	if procs, err := os.ReadDir("/proc"); err == nil {
		for _, p := range procs {
			if _, err := strconv.Atoi(p.Name()); err == nil {
				candidates = append(candidates, "/proc/"+p.Name()+"/ns/net")
			}
		}
	}
	for _, c := range candidates {
		var st unix.Stat_t
		if unix.Stat(c, &st) == nil && st.Ino == ino {
			path = c
			break
		}
	}
	if path == "" {
		return false, nil
	}
	target, err := netns.GetFromPath(path)
	if err != nil {
		return false, nil // it went away meanwhile
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(target); err != nil {
			errc <- err
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- err // the thread stays locked and dies with this goroutine
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return true, <-errc
}

// foreground finds `bpfkit xdp run` filters: an interface of this network
// namespace that runs a program named xdp_filter that no pinned state
// holds. The process holding its link is found through /proc/PID/fdinfo,
// so `xdp run` needs no pin or marker of its own.
func foreground(pinned map[uint32]bool) ([]Status, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list the interfaces: %w", err)
	}
	ino, _, err := netnsID()
	if err != nil {
		return nil, err
	}
	var out []Status
	for _, l := range links {
		x := l.Attrs().Xdp
		if x == nil || x.ProgId == 0 || pinned[x.ProgId] {
			continue
		}
		p, err := ebpf.NewProgramFromID(ebpf.ProgramID(x.ProgId))
		if err != nil {
			continue
		}
		info, err := p.Info()
		p.Close()
		if err != nil || info.Name != "xdp_filter" {
			continue
		}
		out = append(out, Status{Iface: l.Attrs().Name, Netns: ino, State: "foreground", Attached: true,
			Ifindex: l.Attrs().Index, ProgID: x.ProgId, PID: linkHolder(x.ProgId)})
	}
	return out, nil
}

// linkHolder returns the pid of a process holding a BPF link of program
// id, 0 if none is found.
func linkHolder(progID uint32) int {
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	want := "prog_id:\t" + strconv.FormatUint(uint64(progID), 10) + "\n"
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fds, err := os.ReadDir("/proc/" + p.Name() + "/fd")
		if err != nil {
			continue
		}
		for _, fd := range fds {
			target, err := os.Readlink("/proc/" + p.Name() + "/fd/" + fd.Name())
			if err != nil || target != "anon_inode:bpf_link" {
				continue
			}
			info, err := os.ReadFile("/proc/" + p.Name() + "/fdinfo/" + fd.Name())
			if err == nil && strings.Contains(string(info), want) {
				return pid
			}
		}
	}
	return 0
}
