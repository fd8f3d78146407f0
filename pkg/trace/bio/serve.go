package bio

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/bpfkit/bpfkit/pkg/loader"
	"github.com/bpfkit/bpfkit/pkg/tool"
)

// Serve describes the block I/O sampler of `bpfkit serve`: the one object
// in histogram and biotop modes at once, counting from serve's start.
var Serve = tool.Descriptor{
	Name:    "bio",
	Kind:    tool.Sampler,
	Summary: "block I/O latency per disk and operation, bytes per cgroup, disk and direction",
	Spec:    ServeSpec,
	Hooks:   loader.Options{Alternatives: Alternatives},
	Metrics: []string{"bpfkit_block_io_latency_seconds", "bpfkit_block_io_bytes_total"},
}

// ServeSpec is the object as serve runs it: latency histograms (from the
// issue, as biolatency without -Q) per device and operation, and biotop's
// counters per cgroup of the submitter and device (no process).
func ServeSpec() (*ebpf.CollectionSpec, error) {
	spec, err := loadBio()
	if err != nil {
		return nil, err
	}
	var knobs bioVariableSpecs
	if err := spec.Assign(&knobs); err != nil {
		return nil, err
	}
	if err := errors.Join(
		knobs.Mode.Set(uint32(modeHist|modeTop)),
		knobs.HaveIoStart.Set(haveIOStart()),
		knobs.RqArg.Set(rqArg()),
		knobs.ByDisk.Set(true),
		knobs.FlagsMask.Set(uint32(opMask)),
		knobs.TopPerCgroup.Set(true),
		knobs.HistSum.Set(true),
	); err != nil {
		return nil, fmt.Errorf("configure bio: %w", err)
	}
	return spec, nil
}

// OpHist is the latency histogram of one device and operation: Buckets
// as Hist's, in microseconds, and the sum of the latencies.
type OpHist struct {
	Disk, Op string
	Buckets  [Slots]uint64
	Sum      time.Duration
}

// Usage is what the requests of one cgroup moved on one device in one
// direction ("read" or "write": the kernel's rq_data_dir, so a discard
// counts as a write and a flush as a read of 0 bytes).
type Usage struct {
	Cgroup    uint64
	Disk, Dir string
	Bytes     uint64
}

// ReadServe reads objects loaded from ServeSpec: totals since they were
// loaded.
func ReadServe(objs *loader.Objects, disks *Disks) ([]OpHist, []Usage, error) {
	var maps bioMaps
	if err := objs.Assign(&maps); err != nil {
		return nil, nil, err
	}
	var hists []OpHist
	ops := kernelOps()
	err := loader.ReadAll(maps.Hists, func(k *bioBioHistKey, v *bioBioHist) {
		h := OpHist{Disk: disks.Name(k.Dev), Op: ops.name(k.Flags), Sum: time.Duration(v.SumNs)}
		copy(h.Buckets[:], v.Slots[:])
		hists = append(hists, h)
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read block I/O histograms: %w", err)
	}
	var use []Usage
	err = loader.ReadAll(maps.Top, func(k *bioBioTopKey, v *bioBioTopVal) {
		disk := disks.Name(k.Dev)
		use = append(use, Usage{Cgroup: k.Cgroup, Disk: disk, Dir: "read", Bytes: v.ReadBytes},
			Usage{Cgroup: k.Cgroup, Disk: disk, Dir: "write", Bytes: v.WriteBytes})
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read block I/O counters: %w", err)
	}
	return hists, use, nil
}

// haveIOStart says whether the kernel has block_io_start (6.5+).
func haveIOStart() bool {
	return loader.Hook{Kind: loader.HookRawTracepoint, Name: "block_io_start"}.Available() == nil
}

// reqOps names request operations as the running kernel's enum req_op
// (req_opf before 6.0) does, lower case without REQ_OP_: "read",
// "write", "flush", "discard", "write_zeroes"...
type reqOps map[uint32]string

func kernelOps() reqOps {
	ops := reqOps{opRead: "read", opWrite: "write", opFlush: "flush", opDiscard: "discard"}
	spec, err := loader.KernelBTF()
	if err != nil {
		return ops
	}
	for _, name := range []string{"req_op", "req_opf"} {
		var e *btf.Enum
		if spec.TypeByName(name, &e) != nil {
			continue
		}
		for _, v := range e.Values {
			if n, ok := strings.CutPrefix(v.Name, "REQ_OP_"); ok && n != "LAST" {
				ops[uint32(v.Value)] = strings.ToLower(n)
			}
		}
		break
	}
	return ops
}

func (o reqOps) name(op uint32) string {
	if n, ok := o[op]; ok {
		return n
	}
	return strconv.FormatUint(uint64(op), 10)
}
