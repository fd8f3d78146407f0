package loader

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// batchSize is how many elements one batch call of ReadAll, PutAll and
// DeleteAll moves at most: large tables (100,000s of entries) take a few
// dozen syscalls instead of one or two per element.
const batchSize = 8192

// ReadAll calls fn for every element of a map whose values are not per CPU
// (key and value are reused: copy what must outlive the call). It reads in
// batches (BPF_MAP_LOOKUP_BATCH, Linux 5.6) where the map type has them, and
// iterates key by key where not (LPM tries).
func ReadAll[K, V any](m *ebpf.Map, fn func(k *K, v *V)) error {
	err := batches(m.BatchLookup, min(batchSize, max(int(m.MaxEntries()), 1)), fn)
	if !errors.Is(err, ebpf.ErrNotSupported) {
		if err != nil {
			return fmt.Errorf("read map %s: %w", m, err)
		}
		return nil
	}
	var (
		k K
		v V
	)
	it := m.Iterate()
	for it.Next(&k, &v) {
		fn(&k, &v)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read map %s: %w", m, err)
	}
	return nil
}

// batchOp is Map.BatchLookup or Map.BatchLookupAndDelete.
type batchOp func(cursor *ebpf.MapBatchCursor, keys, values any, opts *ebpf.BatchOptions) (int, error)

// batches runs op over the whole map, size elements at a time, calling fn
// for each element. ErrNotSupported (a map type without batches) comes
// from the first call, before anything is read.
func batches[K, V any](op batchOp, size int, fn func(k *K, v *V)) error {
	keys := make([]K, size)
	values := make([]V, size)
	var cursor ebpf.MapBatchCursor
	for {
		n, err := op(&cursor, keys, values, nil)
		if errors.Is(err, ebpf.ErrNotSupported) {
			return err
		}
		for i := range n {
			fn(&keys[i], &values[i])
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// PutAll writes keys[i] -> values[i], in batches where the map type has
// them (BPF_MAP_UPDATE_BATCH) and one by one where not. For a per-CPU map,
// values holds one value per possible CPU for each key, key after key.
func PutAll[K, V any](m *ebpf.Map, keys []K, values []V) error {
	stride := 1
	switch m.Type() {
	case ebpf.PerCPUHash, ebpf.PerCPUArray, ebpf.LRUCPUHash, ebpf.PerCPUCGroupStorage:
		n, err := ebpf.PossibleCPU()
		if err != nil {
			return err
		}
		stride = n
	}
	if len(values) != len(keys)*stride {
		return fmt.Errorf("update map %s: %d keys, %d values", m, len(keys), len(values))
	}
	for i := 0; i < len(keys); i += batchSize {
		j := min(i+batchSize, len(keys))
		_, err := m.BatchUpdate(keys[i:j], values[i*stride:j*stride], nil)
		if errors.Is(err, ebpf.ErrNotSupported) {
			for k := i; k < j; k++ {
				var v any = &values[k]
				if stride > 1 {
					v = values[k*stride : (k+1)*stride]
				}
				if err = m.Put(&keys[k], v); err != nil {
					break
				}
			}
		}
		if err != nil {
			return fmt.Errorf("update map %s: %w", m, err)
		}
	}
	return nil
}

// DeleteAll removes keys from a map, in batches where the map type has them
// (BPF_MAP_DELETE_BATCH) and one by one where not. Keys already gone are not
// an error.
func DeleteAll[K any](m *ebpf.Map, keys []K) error {
	for i := 0; i < len(keys); i += batchSize {
		j := min(i+batchSize, len(keys))
		n, err := m.BatchDelete(keys[i:j], nil)
		if err == nil {
			continue
		}
		// A batch stops at its first failure (a key that is gone, after n
		// deleted), or never starts (a map type without batches; old
		// kernels leave n as it was asked then): finish it key by key.
		if errors.Is(err, ebpf.ErrNotSupported) {
			n = 0
		}
		for k := i + n; k < j; k++ {
			if err := m.Delete(&keys[k]); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return fmt.Errorf("delete from map %s: %w", m, err)
			}
		}
	}
	return nil
}
