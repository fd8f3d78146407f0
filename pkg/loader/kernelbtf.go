package loader

import (
	"sync"

	"github.com/cilium/ebpf/btf"
)

var kernelBTF struct {
	once sync.Once
	spec *btf.Spec
	err  error
}

// KernelBTF returns the running kernel's BTF, read once per process:
// decoding it takes tens of milliseconds, and hook probes, CO-RE
// relocation and `check` all need it.
func KernelBTF() (*btf.Spec, error) {
	kernelBTF.once.Do(func() {
		kernelBTF.spec, kernelBTF.err = btf.LoadKernelSpec()
		if kernelBTF.err != nil {
			kernelBTF.err = ErrNoBTF
		}
	})
	return kernelBTF.spec, kernelBTF.err
}
