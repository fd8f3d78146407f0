// Package serve is `bpfkit serve`: in-kernel per-cgroup counters, read
// only when Prometheus scrapes, as Prometheus metrics.
//
// Each tool (Tools) loads small BPF programs that add to maps keyed by
// cgroup id; the Exporter is a prometheus.Collector whose Collect reads
// those maps, names each cgroup id by its path (walking the cgroup2 tree
// when an id is new), and builds at most MaxSeries series per metric, the
// rest summed into cgroup="other", which its Gather adds to the page.
package serve

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/bpfkit/bpfkit/pkg/loader"
	"github.com/bpfkit/bpfkit/pkg/trace/bio"
)

// DefaultMaxSeries is how many series each per-cgroup metric has at most,
// beyond "other", unless told otherwise.
const DefaultMaxSeries = 10000

// Options configure an Exporter.
type Options struct {
	Tools      []string // names of Tools
	MallocPIDs []int    // processes whose allocator calls are counted (mallocTool)
	MaxSeries  int      // per metric; 0 is DefaultMaxSeries
	Debug      bool     // full verifier log on rejection
}

// Exporter runs tools and reads them when scraped.
type Exporter struct {
	mu       sync.Mutex
	opts     Options
	running  []running // in the order of Tools
	cgroups  *cgroups
	families map[*prometheus.Desc]*family
	built    []*dto.MetricFamily // by the last Collect, for Gather
	scraping sync.Mutex          // held from a Gather until its page is written
	disks    *bio.Disks          // names block devices for the bio tool
}

type running struct {
	tool *Tool
	objs *loader.Objects // nil for xdp and a tool with its own open
	own  opened          // loaded by the tool's open
}

// New loads and attaches the tools of opts. On error nothing stays loaded.
func New(opts Options) (*Exporter, error) {
	cg, err := newCgroups()
	if err != nil {
		return nil, err
	}
	e := &Exporter{cgroups: cg, families: map[*prometheus.Desc]*family{}, disks: bio.NewDisks()}
	pairs := newLabelPairs()
	// Each per-cgroup metric and the number of labels it adds.
	for desc, extras := range map[*prometheus.Desc]int{
		descExec: 0, descExit: 1, descSwitches: 1, descRunqlat: 0,
		descFileBytes: 1, descFileOps: 1, descOpenErrors: 1,
		descTCPClosed: 0, descTCPRetransmits: 0,
		descOOMKills: 0, descZombies: 0, descSyscalls: 1, descSyscallErrors: 1,
		descBlockBytes: 2, descMallocBytes: 1,
	} {
		e.families[desc] = newFamily(desc, extras, pairs)
	}
	if err := e.Reconfigure(opts); err != nil {
		return nil, err
	}
	return e, nil
}

// Reconfigure runs the tools of opts: it loads the new ones first and, only
// if all load, detaches those no longer wanted. A new MaxSeries hands out
// the series' places afresh.
func (e *Exporter) Reconfigure(opts Options) error {
	if opts.MaxSeries == 0 {
		opts.MaxSeries = DefaultMaxSeries
	}
	for _, name := range opts.Tools {
		if toolByName(name) == nil {
			return fmt.Errorf("no tool %q", name)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var next, added []running
	for _, t := range append(slices.Clone(Tools), mallocTool) {
		if !slices.Contains(opts.Tools, t.Name) && (t != mallocTool || len(opts.MallocPIDs) == 0) {
			continue
		}
		same := t != mallocTool || slices.Equal(opts.MallocPIDs, e.opts.MallocPIDs)
		if i := slices.IndexFunc(e.running, func(r running) bool { return r.tool == t }); i >= 0 && same {
			next = append(next, e.running[i])
			continue
		}
		var (
			objs *loader.Objects
			own  opened
			err  error
		)
		if t.open != nil {
			own, err = t.open(opts)
		} else {
			objs, err = t.load(opts.Debug)
		}
		if err != nil {
			for _, r := range added {
				r.close()
			}
			return err
		}
		r := running{t, objs, own}
		added = append(added, r)
		next = append(next, r)
	}
	var errs []error
	for _, r := range e.running {
		if !slices.Contains(next, r) {
			errs = append(errs, r.close())
		}
	}
	if opts.MaxSeries != e.opts.MaxSeries {
		for _, f := range e.families {
			f.reset()
		}
	}
	e.running, e.opts = next, opts
	return errors.Join(errs...)
}

func (r running) close() error {
	if r.own != nil {
		return r.own.Close()
	}
	if r.objs == nil {
		return nil
	}
	return r.objs.Close()
}

// Running lists the tools running.
func (e *Exporter) Running() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var names []string
	for _, r := range e.running {
		names = append(names, r.tool.Name)
	}
	return names
}

// Close detaches every tool.
func (e *Exporter) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var errs []error
	for _, r := range e.running {
		errs = append(errs, r.close())
	}
	e.running = nil
	return errors.Join(errs...)
}

// Describe sends every metric serve may export.
func (e *Exporter) Describe(ch chan<- *prometheus.Desc) {
	for desc := range e.families {
		ch <- desc
	}
	for _, d := range netDescs {
		ch <- d
	}
	for _, d := range []*prometheus.Desc{descBlockLatency, descXDPPackets, descXDPBytes, descLost, descSkipped, descScrape, descDropped, descCgroupWalks} {
		ch <- d
	}
}

// Collect reads every running tool's maps: this is the only time serve
// reads them. Scrapes take turns. It sends every metric but the
// per-cgroup ones, which it builds for Gather.
func (e *Exporter) Collect(ch chan<- prometheus.Metric) {
	start := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cgroups.scrape()
	for _, r := range e.running {
		var err error
		if r.own != nil {
			err = r.tool.collectOwn(e, r.own, ch)
		} else {
			err = r.tool.collect(e, r.objs, ch)
		}
		if err != nil {
			ch <- prometheus.NewInvalidMetric(descLost, fmt.Errorf("tool %s: %w", r.tool.Name, err))
		}
		var h loader.Health
		switch {
		case r.own != nil:
			h = r.own.Health()
		case r.objs != nil:
			h = r.objs.Health()
		}
		if r.own != nil || r.objs != nil {
			ch <- prometheus.MustNewConstMetric(descLost, prometheus.CounterValue, float64(h.Lost), r.tool.Name)
			ch <- prometheus.MustNewConstMetric(descSkipped, prometheus.CounterValue, float64(h.Missed), r.tool.Name)
		}
	}
	var dropped uint64
	e.built = e.built[:0]
	for _, f := range e.families {
		if mf := f.build(e.opts.MaxSeries); mf != nil {
			e.built = append(e.built, mf)
		}
		dropped += f.dropped
	}
	ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(dropped))
	ch <- prometheus.MustNewConstMetric(descCgroupWalks, prometheus.CounterValue, float64(e.cgroups.walks))
	ch <- prometheus.MustNewConstMetric(descScrape, prometheus.GaugeValue, time.Since(start).Seconds())
}

// MaxSeries is the limit in force.
func (e *Exporter) MaxSeries() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.opts.MaxSeries
}

// Gather is serve's page as a prometheus.TransactionalGatherer: reg's
// metrics (reg holds e; its Gather runs e's Collect) and the per-cgroup
// families that Collect built, sorted by name. They stay e's: the next
// Gather waits until done, called once the page is written.
func (e *Exporter) Gather(reg prometheus.Gatherer) ([]*dto.MetricFamily, func(), error) {
	e.scraping.Lock()
	mfs, err := reg.Gather()
	e.mu.Lock()
	mfs = append(mfs, e.built...)
	e.mu.Unlock()
	slices.SortFunc(mfs, func(a, b *dto.MetricFamily) int { return strings.Compare(a.GetName(), b.GetName()) })
	return mfs, e.scraping.Unlock, err
}
