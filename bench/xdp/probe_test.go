package xdpbench

import (
	"net/netip"
	"testing"

	"github.com/bpfkit/bpfkit/pkg/xdp"
)

func BenchmarkProbe(b *testing.B) {
	testkit := func(rules []xdp.Rule, frame []byte) func(b *testing.B) {
		return func(b *testing.B) {
			f, err := xdp.Load(xdp.Options{Rules: rules})
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			bench(b, f.Program(), frame)
		}
	}
	many := xdp.ManyRules(100000)
	srcOnly := make([]xdp.Rule, len(many))
	for i, r := range many {
		srcOnly[i] = xdp.Rule{Src: r.Src, Action: r.Action}
	}
	one := []xdp.Rule{{Src: netip.MustParsePrefix("198.18.3.9/32"), Action: xdp.Action{Kind: xdp.Drop}}}
	oneport := []xdp.Rule{{Src: netip.MustParsePrefix("198.18.3.9/32"), Proto: 17, DPort: xdp.PortRange{Lo: 1777, Hi: 1777}, Action: xdp.Action{Kind: xdp.Drop}}}
	b.Run("src-only-100k", testkit(srcOnly, hit))
	b.Run("src-only-1", testkit(one, hit))
	b.Run("src+port-1", testkit(oneport, hit))
	b.Run("src+port-100k", testkit(many, hit))
}
