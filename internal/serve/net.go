package serve

import (
	"strconv"

	"github.com/cilium/ebpf"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bpfkit/bpfkit/pkg/loader"
	"github.com/bpfkit/bpfkit/pkg/tool"
	"github.com/bpfkit/bpfkit/pkg/trace/drops"
	"github.com/bpfkit/bpfkit/pkg/trace/netrx"
	"github.com/bpfkit/bpfkit/pkg/trace/softirqs"
)

// The packet path's metrics: machine-wide, not per cgroup (a packet is
// dropped or received in softirq context, on behalf of no task). serve
// loads the tools' own objects (drops in summary mode).
var (
	descDrops = prometheus.NewDesc("bpfkit_drops_total",
		"Packets the kernel freed as dropped (skb:kfree_skb), by the reason the running kernel names (NOT_SPECIFIED before 5.17).",
		[]string{"reason"}, nil)
	descSoftirq = prometheus.NewDesc("bpfkit_softirq_seconds_total",
		"Time spent in softirqs, by CPU and vector (as /proc/softirqs names it), from softirq_entry to softirq_exit.",
		[]string{"cpu", "vector"}, nil)
	descNetrx = prometheus.NewDesc("bpfkit_netrx_packets_total",
		"Packets the stack received (net:netif_receive_skb), by interface name (summed over the namespaces that have one), RX queue (\"\" when none was recorded) and the CPU that processed them.",
		[]string{"iface", "queue", "cpu"}, nil)
	netDescs = []*prometheus.Desc{descDrops, descSoftirq, descNetrx}
)

func collectDrops(_ *Exporter, objs *loader.Objects, ch chan<- prometheus.Metric) error {
	reasons, err := drops.KernelReasons()
	if err != nil {
		return err
	}
	totals, err := drops.ReasonTotals(objs, reasons)
	if err != nil {
		return err
	}
	for reason, n := range totals {
		ch <- prometheus.MustNewConstMetric(descDrops, prometheus.CounterValue, float64(n), reason)
	}
	return nil
}

func collectSoftirqs(_ *Exporter, objs *loader.Objects, ch chan<- prometheus.Metric) error {
	names, _, err := softirqs.ReadProc()
	if err != nil {
		return err
	}
	stats, err := softirqs.Read(objs, names)
	if err != nil {
		return err
	}
	for _, s := range stats {
		ch <- prometheus.MustNewConstMetric(descSoftirq, prometheus.CounterValue, s.Time.Seconds(), strconv.Itoa(s.CPU), s.Name)
	}
	return nil
}

func collectNetrx(_ *Exporter, objs *loader.Objects, ch chan<- prometheus.Metric) error {
	type labels struct {
		iface string
		queue int32
		cpu   uint32
	}
	sum := map[labels]uint64{}
	if err := netrx.Read(objs, func(c netrx.Count) {
		if c.Packets > 0 {
			sum[labels{c.Iface, c.Queue, c.CPU}] += c.Packets
		}
	}); err != nil {
		return err
	}
	for l, n := range sum {
		queue := ""
		if l.queue != netrx.NoQueue {
			queue = strconv.Itoa(int(l.queue))
		}
		ch <- prometheus.MustNewConstMetric(descNetrx, prometheus.CounterValue, float64(n), l.iface, queue, strconv.FormatUint(uint64(l.cpu), 10))
	}
	return nil
}

// withSpec is d loading spec instead of its own objects.
func withSpec(d tool.Descriptor, spec func() (*ebpf.CollectionSpec, error)) tool.Descriptor {
	d.Spec = spec
	return d
}
