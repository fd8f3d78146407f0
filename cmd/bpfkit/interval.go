package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/bpfkit/bpfkit/internal/flagval"
	"github.com/bpfkit/bpfkit/internal/output"
	"github.com/bpfkit/bpfkit/pkg/loader"
)

// intervalArgs are the `[interval] [count]` arguments of the tools that
// print a summary every interval, like vmstat and pidstat.
type intervalArgs struct {
	interval time.Duration
	count    int // 0: until Ctrl-C
}

// parseIntervalArgs reads [interval] [count]; interval is seconds ("1",
// "0.5") or a duration ("500ms"), def when absent.
func parseIntervalArgs(args []string, def time.Duration) (intervalArgs, error) {
	ia := intervalArgs{interval: def}
	if len(args) > 0 {
		d, err := time.ParseDuration(args[0])
		if err != nil {
			s, ferr := strconv.ParseFloat(args[0], 64)
			if ferr != nil {
				return ia, fmt.Errorf("interval %s: give seconds (1, 0.5) or a duration (500ms)", flagval.Quote(args[0]))
			}
			d = time.Duration(s * float64(time.Second))
		}
		if d <= 0 {
			return ia, fmt.Errorf("interval %s: must be positive", flagval.Quote(args[0]))
		}
		ia.interval = d
	}
	if len(args) > 1 {
		n, err := strconv.Atoi(args[1])
		if err != nil || n <= 0 {
			return ia, fmt.Errorf("count %s: give a positive number of intervals", flagval.Quote(args[1]))
		}
		ia.count = n
	}
	return ia, nil
}

// every calls fn at the end of each interval with the time and the length
// of the interval, count times (or until ctx ends: then once more for the
// part of the interval that has passed, so nothing counted is left out).
func (ia intervalArgs) every(ctx context.Context, fn func(now time.Time, elapsed time.Duration) error) error {
	tick := time.NewTicker(ia.interval)
	defer tick.Stop()
	last := time.Now()
	for n := 0; ia.count == 0 || n < ia.count; n++ {
		select {
		case <-ctx.Done():
			now := time.Now()
			return fn(now, now.Sub(last))
		case now := <-tick.C:
			if err := fn(now, now.Sub(last)); err != nil {
				return err
			}
			last = now
		}
	}
	return nil
}

// printSample prints one interval of a sampler the common way: in a table
// a blank line and the header first, then the rows; then what the tool's
// health h gained since the last interval, and a flush.
func printSample[R any](p *output.Printer[R], table bool, rows []R, health *healthReport, h loader.Health) error {
	if table {
		fmt.Fprintln(os.Stdout)
		if err := p.Header(); err != nil {
			return err
		}
	}
	for i := range rows {
		if err := p.Print(&rows[i]); err != nil {
			return err
		}
	}
	health.report(h)
	return p.Flush()
}
