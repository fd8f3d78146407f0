package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/bpfkit/bpfkit/internal/output"
	"github.com/bpfkit/bpfkit/pkg/trace/bio"
)

func init() { addTool(&bio.Biolatency, newBiolatencyCmd) }

// addBioFilterFlags registers the filters the block I/O tools share:
// -d DISK, -p PID and -c/--cgroup (the submitter's).
func addBioFilterFlags(f *pflag.FlagSet, cfg *bio.Config, verb string) {
	f.StringVarP(&cfg.Disk, "disk", "d", "", verb+" this disk or partition only (a name lsblk shows: sda, sda1, nvme0n1)")
	addFilterFlags(f, &cfg.Filter, verb, "pid")
	f.StringVarP(&cfg.Filter.Cgroup, "cgroup", "c", "", verb+" I/O submitted from this cgroup v2 directory only")
}

// warnBio says on stderr what the bio tools could not count, once per
// growth of the counters.
type warnBio struct{ last bio.Stats }

func (w *warnBio) check(st bio.Stats) {
	if st.NotCounted() > w.last.NotCounted() {
		fmt.Fprintf(os.Stderr, "bpfkit: %d requests not counted: a table was full (%d in flight, %d histograms, %d biotop rows, %d events)\n",
			st.NotCounted(), st.StartFull, st.HistFull, st.TopFull, st.Lost)
	}
	w.last = st
}

// summary is the last stderr line of a bio tool.
func (w *warnBio) summary() {
	st := w.last
	fmt.Fprintf(os.Stderr, "bpfkit: %d requests; %d in flight when tracing began (not counted); %d not counted (table full)\n",
		st.Done, st.NoStart, st.NotCounted())
	warnMissed(st.Missed)
}

func newBiolatencyCmd(g *globalFlags) *cobra.Command {
	var (
		cfg        bio.Config
		timestamps bool
	)
	cmd := &cobra.Command{
		Use:   "biolatency [interval] [count]",
		Short: bio.Biolatency.Summary,
		Long: `Measure, in the kernel, how long block I/O requests take, from their issue to
the driver to their completion (-Q: from their start, time queued in the OS
included), into log2 histograms. Requests are attributed at submission: -p
and -c select the task or cgroup that submitted them. Requests already in
flight when tracing begins are counted apart (on stderr), not in the
histograms. Without an interval the histogram is printed once, at Ctrl-C.`,
		Example: `  bpfkit biolatency                # until Ctrl-C
  bpfkit biolatency -m 5 3         # in ms, every 5 s, 3 times
  bpfkit biolatency -D -F          # per disk and request type
  bpfkit biolatency -d nvme0n1 -Q  # one disk, queue time included
  bpfkit biolatency -o json 1      # JSON lines`,
		Args: cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := g.format()
			if err != nil {
				return err
			}
			ia, err := parseIntervalArgs(args, 99999*time.Hour)
			if err != nil {
				return err
			}
			cfg.Debug = g.debug
			t, err := bio.NewLatency(cfg)
			if err != nil {
				return err
			}
			defer t.Close()
			if format == output.Table && len(args) == 0 {
				fmt.Fprintln(os.Stderr, "Tracing block device I/O... Hit Ctrl-C to end.")
			}
			p := output.NewPrinter(os.Stdout, format, bio.HistFields(cfg))
			var w warnBio
			defer w.summary()
			var text []byte
			return ia.every(cmd.Context(), func(now time.Time, _ time.Duration) error {
				hists, err := t.Delta()
				if err != nil {
					return err
				}
				text = text[:0]
				if format == output.Table && timestamps {
					text = append(text, '\n')
					text = now.AppendFormat(text, "15:04:05")
					text = append(text, '\n')
				}
				for i := range hists {
					r := bio.Report{Time: now, Unit: t.Unit(), Hist: hists[i]}
					if format == output.Table {
						text = bio.AppendHistText(text, &r)
					} else if err := p.Print(&r); err != nil {
						return err
					}
				}
				if _, err := os.Stdout.Write(text); err != nil {
					return err
				}
				st, err := t.Stats()
				if err != nil {
					return err
				}
				w.check(st)
				return p.Flush()
			})
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&cfg.Milliseconds, "milliseconds", "m", false, "histogram in milliseconds")
	f.BoolVarP(&cfg.Queued, "queued", "Q", false, "include the time queued in the OS (from the request's start, not its issue)")
	f.BoolVarP(&cfg.ByDisk, "disks", "D", false, "one histogram per disk or partition")
	f.BoolVarP(&cfg.ByFlags, "flags", "F", false, "one histogram per request type (rwbs: R, WS, FWFS...)")
	f.BoolVarP(&timestamps, "timestamp", "T", false, "print the time with each output")
	addBioFilterFlags(f, &cfg, "measure")
	return cmd
}
