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

// SchedSwitchHasPrevState tells whether this kernel's sched_switch
// tracepoint passes prev_state, the state __schedule read when it decided
// how to count the switch (5.18+): unlike the task's state read in the
// tracepoint, a wakeup racing the switch-out cannot change it.
func SchedSwitchHasPrevState() bool {
	spec, err := KernelBTF()
	if err != nil {
		return false
	}
	var td *btf.Typedef
	if err := spec.TypeByName("btf_trace_sched_switch", &td); err != nil {
		return false
	}
	ptr, ok := td.Type.(*btf.Pointer)
	if !ok {
		return false
	}
	proto, ok := ptr.Target.(*btf.FuncProto)
	// void *__data, bool preempt, prev, next, unsigned int prev_state
	return ok && len(proto.Params) == 5
}
