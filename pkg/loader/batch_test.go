package loader

import (
	"errors"
	"maps"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/bpfkit/bpfkit/internal/testkit"
)

// TestBatch writes, reads and deletes 20,000 elements (more than one batch)
// through PutAll, ReadAll and DeleteAll on a hash (batched), an LPM trie
// (no batch operations: one by one) and a per-CPU array (batched, one value
// per CPU), and checks the exact contents after each step.
func TestBatch(t *testing.T) {
	testkit.RequireRoot(t)
	if err := Preflight(); err != nil {
		t.Fatal(err)
	}
	const n = 20_000
	type lpmKey struct{ Prefixlen, Addr uint32 }
	type value struct{ A, B uint64 }
	newMap := func(t *testing.T, typ ebpf.MapType, keySize uint32, flags uint32) *ebpf.Map {
		m, err := ebpf.NewMap(&ebpf.MapSpec{Type: typ, KeySize: keySize, ValueSize: 16, MaxEntries: n, Flags: flags})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	want := map[uint32]value{}
	var keys []uint32
	var vals []value
	for i := range uint32(n) {
		keys = append(keys, i*7)
		vals = append(vals, value{uint64(i), uint64(i) << 32})
		want[i*7] = vals[i]
	}

	t.Run("hash", func(t *testing.T) {
		m := newMap(t, ebpf.Hash, 4, 0)
		check := func(want map[uint32]value) {
			t.Helper()
			got := map[uint32]value{}
			if err := ReadAll(m, func(k *uint32, v *value) { got[*k] = *v }); err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, want) {
				t.Fatalf("read %d elements, want %d (or different values)", len(got), len(want))
			}
		}
		if err := PutAll(m, keys, vals); err != nil {
			t.Fatal(err)
		}
		check(want)
		// Delete the even keys, one of them twice.
		var del []uint32
		rest := maps.Clone(want)
		for i, k := range keys {
			if i%2 == 0 {
				del = append(del, k)
				delete(rest, k)
			}
		}
		if err := DeleteAll(m, append(del, del[0])); err != nil {
			t.Fatal(err)
		}
		check(rest)
	})

	t.Run("lpm-trie", func(t *testing.T) {
		m := newMap(t, ebpf.LPMTrie, 8, 1 /* BPF_F_NO_PREALLOC */)
		var lk []lpmKey
		for _, k := range keys {
			lk = append(lk, lpmKey{32, k})
		}
		if err := PutAll(m, lk, vals); err != nil {
			t.Fatal(err)
		}
		got := map[uint32]value{}
		if err := ReadAll(m, func(k *lpmKey, v *value) { got[k.Addr] = *v }); err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(got, want) {
			t.Fatalf("read %d elements, want %d (or different values)", len(got), len(want))
		}
		if err := DeleteAll(m, lk); err != nil {
			t.Fatal(err)
		}
		var k lpmKey
		if err := m.NextKey(nil, &k); !errors.Is(err, ebpf.ErrKeyNotExist) {
			t.Fatalf("trie after DeleteAll: first key %+v, %v", k, err)
		}
	})

	t.Run("per-cpu", func(t *testing.T) {
		m := newMap(t, ebpf.PerCPUArray, 4, 0)
		cpus := ebpf.MustPossibleCPU()
		ids := []uint32{3, n - 1}
		pv := make([]value, len(ids)*cpus)
		for i := range pv {
			pv[i] = value{uint64(i), 1}
		}
		if err := PutAll(m, ids, pv); err != nil {
			t.Fatal(err)
		}
		for i, id := range ids {
			var got []value
			if err := m.Lookup(id, &got); err != nil {
				t.Fatal(err)
			}
			for c := range cpus {
				if got[c] != pv[i*cpus+c] {
					t.Fatalf("key %d cpu %d: %+v, want %+v", id, c, got[c], pv[i*cpus+c])
				}
			}
		}
		if err := PutAll(m, ids, pv[:1]); err == nil {
			t.Fatal("PutAll took one value for two keys on a per-CPU map")
		}
	})
}
