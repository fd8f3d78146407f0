package serve

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/bpfkit/bpfkit/pkg/loader"
	"github.com/bpfkit/bpfkit/pkg/xdp"
)

// collectXDP reads the counters of every filter pinned under
// /sys/fs/bpf/bpfkit/xdp, in every network namespace, through pkg/xdp's
// read API (List, Open, Stats); it changes nothing.
func collectXDP(_ *Exporter, _ *loader.Objects, ch chan<- prometheus.Metric) error {
	filters, err := xdp.List()
	if err != nil {
		return err
	}
	var errs []error
	for _, st := range filters {
		var s xdp.Stats
		err := inNetns(st.Netns, func() error {
			f, err := xdp.Open(st.Iface)
			if err != nil {
				return err
			}
			defer f.Close()
			s, err = f.Stats()
			return err
		})
		if errors.Is(err, errNetnsGone) {
			continue // its interface went with the namespace: nothing to count
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("xdp filter on %s: %w", st.Iface, err))
			continue
		}
		netns := strconv.FormatUint(st.Netns, 10)
		send := func(rule, action string, c xdp.Counter) {
			ch <- prometheus.MustNewConstMetric(descXDPPackets, prometheus.CounterValue, float64(c.Packets), st.Iface, netns, rule, action)
			ch <- prometheus.MustNewConstMetric(descXDPBytes, prometheus.CounterValue, float64(c.Bytes), st.Iface, netns, rule, action)
		}
		for _, r := range s.Rules {
			send(strconv.FormatUint(uint64(r.ID), 10), r.Action.String(), r.Counter)
		}
		send("default", "pass", s.DefaultPass)
		send("default", "drop", s.DefaultDrop)
		send("malformed", "drop", s.Malformed)
		send("non-ip", "pass", s.NonIP)
	}
	return errors.Join(errs...)
}

var errNetnsGone = errors.New("the network namespace is gone")

// inNetns runs fn on an OS thread in the network namespace whose inode is
// ino (pkg/xdp names a filter's pinned state by the namespace of the
// calling thread). The namespace is found among the named ones (ip netns,
// /run/netns) and those of processes (/proc/PID/ns/net).
func inNetns(ino uint64, fn func() error) error {
	self, err := nsIno("/proc/thread-self/ns/net")
	if err != nil {
		return err
	}
	if self == ino {
		return fn()
	}
	path := findNetns(ino)
	if path == "" {
		return errNetnsGone
	}
	done := make(chan error, 1)
	go func() {
		// The thread is thrown away (left locked) unless it gets back.
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			done <- err
			return
		}
		defer orig.Close()
		target, err := os.Open(path)
		if err != nil {
			done <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("enter network namespace %d: %w", ino, err)
			return
		}
		err = fn()
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		done <- err
	}()
	return <-done
}

func nsIno(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

func findNetns(ino uint64) string {
	named, _ := filepath.Glob("/run/netns/*")
	procs, _ := filepath.Glob("/proc/[0-9]*/ns/net")
	for _, p := range append(named, procs...) {
		if n, err := nsIno(p); err == nil && n == ino {
			return p
		}
	}
	return ""
}
