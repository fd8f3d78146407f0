package serve

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bpfkit/bpfkit/pkg/trace/malloc"
)

// mallocTool is bpfkit malloc's object in its serve mode: uprobes on the
// allocators of the processes of --malloc-pids, for those processes
// alone. Every call they make to their allocator traps (not free): it
// runs only when --malloc-pids names processes, and is not one of Tools.
var mallocTool = &Tool{Descriptor: malloc.Serve, open: openMalloc, collectOwn: collectMalloc}

// openMalloc finds the allocator of each process and traces them all in
// one object.
func openMalloc(opts Options) (opened, error) {
	var t *malloc.Tracer
	for _, pid := range opts.MallocPIDs {
		alloc, err := malloc.FindPID(pid)
		if err == nil && t == nil {
			t, err = malloc.New(alloc, pid, malloc.Config{PerCgroup: true, Debug: opts.Debug})
		} else if err == nil {
			err = t.Add(pid, alloc)
		}
		if err != nil {
			if t != nil {
				t.Close()
			}
			return nil, fmt.Errorf("--malloc-pids: %w", err)
		}
	}
	return t, nil
}

func collectMalloc(e *Exporter, own opened, _ chan<- prometheus.Metric) error {
	f := e.families[descMallocBytes]
	return own.(*malloc.Tracer).CgroupBytes(func(cgroup uint64, allocator string, bytes uint64) {
		f.add(e.cgroups.lookup(cgroup), allocator, float64(bytes))
	})
}
