package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/spf13/cobra"

	"github.com/bpfkit/bpfkit/internal/flagval"
	"github.com/bpfkit/bpfkit/internal/output"
	"github.com/bpfkit/bpfkit/pkg/loader"
	"github.com/bpfkit/bpfkit/pkg/trace/malloc"
)

func init() { addTool(&malloc.Tool, newMallocCmd) }

func newMallocCmd(g *globalFlags) *cobra.Command {
	var (
		cfg       malloc.Config
		pid       uint32
		olderThan time.Duration
		duration  time.Duration
		folded    bool
		rows      int
	)
	cmd := &cobra.Command{
		Use:   "malloc (-p PID | -- COMMAND [ARGS...])",
		Short: malloc.Tool.Summary,
		Long: `Count the calls a process makes to its allocator, and the bytes it asks for,
per function (malloc, calloc, realloc, reallocarray, free, posix_memalign,
aligned_alloc, memalign, valloc, pvalloc, jemalloc's mallocx, rallocx,
sdallocx, dallocx), by uprobes on the allocator that serves the process:
glibc, jemalloc, tcmalloc, mimalloc, a library brought in by LD_PRELOAD, or
malloc linked into the executable. With -- COMMAND the command starts held
at its exec and runs once the probes are attached. The counts print when
the process exits, at Ctrl-C or after --duration. JSON lines: function,
calls, bytes, allocator.`,
		Example: `  bpfkit malloc -p 1234                        # until Ctrl-C or its exit
  bpfkit malloc --sizes -- ./server --port 8080
  bpfkit malloc --outstanding --older-than 5s -p 1234
  bpfkit malloc --stacks --folded -- ./a.out > out.folded`,
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := g.format()
			if err != nil {
				return err
			}
			if cmd.ArgsLenAtDash() < 0 && len(args) > 0 {
				return fmt.Errorf("unexpected argument %s: give the command after --, e.g. bpfkit malloc -- %s", flagval.Quote(args[0]), args[0])
			}
			if (pid == 0) == (len(args) == 0) {
				return fmt.Errorf("give a process (-p PID) or a command to start (-- COMMAND ARGS...), one of them")
			}
			if olderThan > 0 && !cfg.Outstanding {
				return fmt.Errorf("--older-than selects outstanding blocks: add --outstanding")
			}
			if folded && !cfg.Stacks {
				return fmt.Errorf("--folded prints stacks: add --stacks")
			}
			// Privileges first: reading another user's process (its maps,
			// its executable) fails anyway without them, less clearly.
			if err := loader.Preflight(); err != nil {
				return err
			}
			cfg.Debug = g.debug
			cfg.Exec = func(pid int, alloc *malloc.Allocator, err error) {
				if err != nil {
					fmt.Fprintf(os.Stderr, "bpfkit: process %d exec'd: its calls are not counted: %v\n", pid, err)
					return
				}
				fmt.Fprintf(os.Stderr, "bpfkit: process %d exec'd %s: allocator %s\n", pid, alloc.Exe, alloc)
			}
			ctx := cmd.Context()
			if duration > 0 {
				var cancel func()
				ctx, cancel = context.WithTimeout(ctx, duration)
				defer cancel()
			}
			var (
				alloc  *malloc.Allocator
				exited = make(chan error, 1)
				child  *exec.Cmd
				t      *malloc.Tracer
			)
			if pid != 0 {
				if alloc, err = malloc.FindPID(int(pid)); err != nil {
					return err
				}
				if t, err = malloc.New(alloc, int(pid), cfg); err != nil {
					return err
				}
				defer t.Close()
				done := make(chan struct{})
				defer close(done)
				go func() { exited <- malloc.WaitExit(int(pid), done) }()
			} else {
				path, err := exec.LookPath(args[0])
				if err != nil {
					return fmt.Errorf("command %s: %w", flagval.Quote(args[0]), err)
				}
				if alloc, err = malloc.FindCommand(path, os.Environ()); err != nil {
					return err
				}
				child = exec.Command(path, args[1:]...)
				child.Args[0] = args[0]
				child.Stdin, child.Stdout, child.Stderr = os.Stdin, os.Stdout, os.Stderr
				release, err := malloc.Start(child)
				if err != nil {
					return err
				}
				pid = uint32(child.Process.Pid)
				t, err = malloc.New(alloc, child.Process.Pid, cfg)
				if err != nil {
					child.Process.Kill()
					release()
					child.Wait()
					return err
				}
				defer t.Close()
				if err := release(); err != nil {
					child.Wait()
					return err
				}
				go func() { exited <- child.Wait() }()
			}
			warnDropped(t.Health().Dropped)
			fmt.Fprintf(os.Stderr, "bpfkit: tracing process %d: allocator %s\n", pid, alloc)
			// Stacks resolve by the process's mappings: read them while
			// it lives, often (a short command maps its libraries and
			// exits within milliseconds); only new files are read again.
			if cfg.Stacks || cfg.Outstanding {
				t.Remember()
			}
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			var waitErr error
		wait:
			for {
				select {
				case <-tick.C:
					if cfg.Stacks || cfg.Outstanding {
						t.Remember()
					}
				case waitErr = <-exited:
					break wait
				case <-ctx.Done():
					if cfg.Stacks || cfg.Outstanding {
						t.Remember()
					}
					break wait
				}
			}
			if err := mallocReport(t, format, cfg, olderThan, folded, rows); err != nil {
				return err
			}
			reportHealth(t.Health())
			if _, ok := waitErr.(*exec.ExitError); ok {
				waitErr = nil // the command's own status: not bpfkit's failure
			}
			return waitErr
		},
	}
	f := cmd.Flags()
	f.VarP(flagval.PID(&pid), "pid", "p", "trace this process")
	f.BoolVarP(&cfg.Follow, "follow", "f", false, "also trace the processes it forks and the programs they exec (threads are always traced)")
	f.BoolVar(&cfg.Sizes, "sizes", false, "log2 histogram of the sizes asked for")
	f.BoolVar(&cfg.Outstanding, "outstanding", false, "the blocks allocated and not freed, per stack, with totals")
	f.Var(flagval.Duration(&olderThan), "older-than", "with --outstanding: only blocks at least this old (e.g. 5s)")
	f.BoolVar(&cfg.Stacks, "stacks", false, "the user stacks that allocate the most bytes")
	f.BoolVar(&folded, "folded", false, "with --stacks: folded output for flame graphs (comm;frames... bytes)")
	addRows(f, &rows, 10, "stacks to show, the most bytes first")
	cfg.MaxBlocks = malloc.DefaultMaxBlocks
	f.Var(flagval.Int(&cfg.MaxBlocks, 1, 1<<24, "blocks"), "max-blocks", "with --outstanding: blocks tracked at most")
	f.VarP(flagval.Duration(&duration), "duration", "d", "stop after this long (e.g. 10s; 0: until the process exits or Ctrl-C)")
	return cmd
}

// mallocReport prints the counts, then what the flags asked for.
func mallocReport(t *malloc.Tracer, format output.Format, cfg malloc.Config, olderThan time.Duration, folded bool, rows int) error {
	rs, err := t.Rows()
	if err != nil {
		return err
	}
	if !folded {
		p := output.NewPrinter(os.Stdout, format, malloc.Fields())
		if err := p.Header(); err != nil {
			return err
		}
		for i := range rs {
			if err := p.Print(&rs[i]); err != nil {
				return err
			}
		}
		if err := p.Flush(); err != nil {
			return err
		}
	}
	var b []byte
	if cfg.Sizes && format == output.Table && !folded {
		sizes, err := t.Sizes()
		if err != nil {
			return err
		}
		b = output.AppendLog2Hist(append(b, '\n'), sizes, "bytes")
	}
	if cfg.Stacks {
		stacks, err := t.Stacks()
		if err != nil {
			return err
		}
		if rows > 0 && len(stacks) > rows {
			stacks = stacks[:rows]
		}
		if !folded {
			b = append(b, "\nTop stacks by bytes allocated:\n"...)
		}
		for i := range stacks {
			if folded {
				b = malloc.AppendFolded(b, t.Allocator().Name, &stacks[i])
			} else {
				b = malloc.AppendText(b, &stacks[i], "allocations")
			}
		}
	}
	if cfg.Outstanding && !folded {
		stacks, total, err := t.Outstanding(olderThan)
		if err != nil {
			return err
		}
		if rows > 0 && len(stacks) > rows {
			stacks = stacks[:rows]
		}
		b = fmt.Appendf(b, "\nOutstanding: %d bytes in %d blocks not freed", total.Bytes, total.Calls)
		if olderThan > 0 {
			b = fmt.Appendf(b, " (older than %s)", olderThan)
		}
		b = append(b, '\n')
		for i := range stacks {
			b = malloc.AppendText(b, &stacks[i], "blocks")
		}
	}
	if format == output.JSON {
		_, err = os.Stderr.Write(b) // stdout keeps only the JSON lines
	} else {
		_, err = os.Stdout.Write(b)
	}
	return err
}
