// Package tool is the contract every bpfkit tool keeps: one Descriptor per
// tool, used by its command, by `bpfkit check` and by `bpfkit serve`, and one
// way to report its health (loader.Health).
package tool

import (
	"github.com/cilium/ebpf"

	"github.com/bpfkit/bpfkit/pkg/loader"
)

// Kind is the shape of a tool.
type Kind int

const (
	// Stream tools push one event per kernel event to a callback
	// (opensnoop, execsnoop, exitsnoop, sched record, ...).
	Stream Kind = iota
	// Sampler tools keep aggregates in kernel maps, read on demand at
	// an interval (filetop, cswitch, runqlat, offcputime, ...).
	Sampler
)

func (k Kind) String() string {
	if k == Sampler {
		return "sampler"
	}
	return "stream"
}

// A Descriptor is all that bpfkit needs to know about a tool outside its own
// package: its name (the command), its kind, the BPF objects it loads and
// how they attach (hooks and the fallbacks chosen at run time). The
// tool's New loads with Hooks, its command is made from it, `bpfkit check`
// probes it, and `serve` runs its samplers from the same kind of value:
// adding a tool means adding one Descriptor.
type Descriptor struct {
	Name    string // the command: "opensnoop", "sched record"
	Kind    Kind
	Summary string // one line, for check and help
	// Spec returns the BPF objects the tool loads.
	Spec func() (*ebpf.CollectionSpec, error)
	// Hooks are the attach options: AlsoAttach, Alternatives.
	Hooks loader.Options
	// Metrics names the Prometheus metric families the tool feeds in
	// `bpfkit serve`, if any.
	Metrics []string
}

// Probe says which hooks of the tool this kernel has and which it lacks,
// without loading anything.
func (d *Descriptor) Probe() (map[string][]loader.Hook, map[string]error, error) {
	spec, err := d.Spec()
	if err != nil {
		return nil, nil, err
	}
	return loader.Probe(spec, d.Hooks)
}

// Load loads the tool's objects with opts (variables, ring size, debug)
// and the descriptor's hooks, and attaches them.
func (d *Descriptor) Load(spec *ebpf.CollectionSpec, opts loader.Options) (*loader.Objects, error) {
	opts.AlsoAttach, opts.Alternatives = d.Hooks.AlsoAttach, d.Hooks.Alternatives
	return loader.Load(spec, opts)
}
