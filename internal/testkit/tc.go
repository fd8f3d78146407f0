package testkit

import (
	"testing"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TCEgress runs prog (a SchedCLS program, direct action) on every packet
// iface sends in the namespace: a clsact qdisc with a cls_bpf filter on its
// egress, through netlink (every kernel since 4.5; TCX would need 6.6). A
// later call replaces the program. The qdisc is removed when the test ends
// (and goes with the namespace anyway).
func (n *NetNS) TCEgress(t testing.TB, iface string, prog *ebpf.Program) {
	t.Helper()
	var qdisc *netlink.Clsact
	n.must(t, func() error {
		l, err := netlink.LinkByName(iface)
		if err != nil {
			return err
		}
		qdisc = &netlink.Clsact{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: l.Attrs().Index,
			Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT}}
		if err := netlink.QdiscReplace(qdisc); err != nil {
			return err
		}
		return netlink.FilterReplace(&netlink.BpfFilter{
			FilterAttrs: netlink.FilterAttrs{LinkIndex: l.Attrs().Index, Parent: netlink.HANDLE_MIN_EGRESS,
				Handle: netlink.MakeHandle(0, 1), Protocol: unix.ETH_P_ALL, Priority: 1},
			Fd: prog.FD(), Name: "bpfkit-test", DirectAction: true,
		})
	})
	t.Cleanup(func() { _ = n.Do(func() error { return netlink.QdiscDel(qdisc) }) })
}
