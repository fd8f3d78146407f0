package loader

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// drainBatch is how many elements one batch call moves at most.
const drainBatch = 256

// Drain reads every element of a hash map and deletes it, calling fn for
// each (key and value are reused: copy what must outlive the call). Elements
// added while it runs may be read now or left for the next Drain. It uses
// BPF_MAP_LOOKUP_AND_DELETE_BATCH (Linux 5.6) and falls back to iterating
// and deleting one by one.
func Drain[K, V any](m *ebpf.Map, fn func(k *K, v *V)) error {
	err := batches(m.BatchLookupAndDelete, drainBatch, fn)
	if errors.Is(err, ebpf.ErrNotSupported) {
		return drainEach(m, fn)
	}
	if err != nil {
		return fmt.Errorf("drain map %s: %w", m, err)
	}
	return nil
}

func drainEach[K, V any](m *ebpf.Map, fn func(k *K, v *V)) error {
	var (
		k    K
		v    V
		keys []K
	)
	it := m.Iterate()
	for it.Next(&k, &v) {
		keys = append(keys, k)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read map %s: %w", m, err)
	}
	for i := range keys {
		// Read again as it is deleted: the kernel may have added to it.
		if err := m.LookupAndDelete(&keys[i], &v); err != nil {
			if errors.Is(err, ebpf.ErrKeyNotExist) {
				continue
			}
			if !errors.Is(err, ebpf.ErrNotSupported) {
				return fmt.Errorf("drain map %s: %w", m, err)
			}
			if err := m.Lookup(&keys[i], &v); err != nil {
				continue
			}
			if err := m.Delete(&keys[i]); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return fmt.Errorf("drain map %s: %w", m, err)
			}
		}
		fn(&keys[i], &v)
	}
	return nil
}
