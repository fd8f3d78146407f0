package testkit

import (
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// DropRule describes what an nftables rule of the namespace's input hook
// drops: packets of protocol Proto (unix.IPPROTO_TCP or IPPROTO_UDP) to
// DstPort, of exactly Length bytes when Length > 0, and only the first
// QuotaBytes bytes of them when QuotaBytes > 0 (`quota until N bytes`).
type DropRule struct {
	Proto      byte
	DstPort    uint16
	Length     uint32
	QuotaBytes uint64
}

// Drop adds rule to a table of its own (inet family, chain on the input
// hook) in the namespace, through netlink (vmtest's VMs have no nft
// binary), and removes the table when the test ends:
//
//	table inet NAME { chain in { type filter hook input priority 0;
//	    meta l4proto P th dport PORT [meta length L] [quota until Q bytes] drop } }
func (n *NetNS) Drop(t testing.TB, table string, rule DropRule) {
	t.Helper()
	// nftables.Conn panics when it cannot open its socket: ask first.
	probe, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		t.Fatalf("no nfnetlink socket (load nf_tables; vmtest: VMTEST_MODULES): %v", err)
	}
	unix.Close(probe)
	fd, err := unix.Open(n.Path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	c, err := nftables.New(nftables.WithNetNSFd(fd))
	if err != nil {
		t.Fatal(err)
	}
	tab := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: table})
	chain := c.AddChain(&nftables.Chain{Name: "in", Table: tab, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter})
	exprs := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{rule.Proto}},
		// Destination port: bytes 2-3 of the TCP and of the UDP header.
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(rule.DstPort)},
	}
	if rule.Length > 0 {
		exprs = append(exprs,
			&expr.Meta{Key: expr.MetaKeyLEN, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(rule.Length)})
	}
	if rule.QuotaBytes > 0 {
		exprs = append(exprs, &expr.Quota{Bytes: rule.QuotaBytes, Over: false})
	}
	exprs = append(exprs, &expr.Verdict{Kind: expr.VerdictDrop})
	c.AddRule(&nftables.Rule{Table: tab, Chain: chain, Exprs: exprs})
	if err := c.Flush(); err != nil {
		t.Fatalf("add nftables rule in %s: %v", n.Name, err)
	}
	t.Cleanup(func() {
		c.DelTable(tab)
		_ = c.Flush() // gone with the namespace anyway
	})
}
