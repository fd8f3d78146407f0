package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
)

// DefaultListen is where serve listens unless told otherwise: loopback
// only, on a port outside 9100-9999, the range of Prometheus's
// default-port-allocations list, which is fully given to other exporters.
const DefaultListen = "127.0.0.1:10064"

// MemoryLimit is the soft limit serve sets on the Go runtime's memory
// unless GOMEMLIMIT is set: a scrape of 10,000 series leaves several MB
// of garbage, and with the runtime's default (collect when the heap has
// doubled) the daemon would keep twice its live heap resident. Above the
// limit the collector runs more often during scrapes; it is soft, so a
// larger live heap (many more series) still works, at some CPU per scrape.
const MemoryLimit = 24 << 20

// Config is what a --config file may set; a field it leaves out keeps its
// default, and a flag given on the command line wins over the file.
//
//	tools = ["exec", "exit", "cswitch", "runqlat"]
//	max_series = 5000
type Config struct {
	Tools     []string `toml:"tools"`
	MaxSeries int      `toml:"max_series"`
}

// ParseConfig reads a config file's text (TOML). Unknown keys and bad
// values are errors.
func ParseConfig(data []byte) (Config, error) {
	var c Config
	md, err := toml.Decode(string(data), &c)
	if err != nil {
		return c, err
	}
	if un := md.Undecoded(); len(un) > 0 {
		keys := make([]string, len(un))
		for i, k := range un {
			keys[i] = k.String()
		}
		return c, fmt.Errorf("unknown key %s: the keys are tools and max_series", strings.Join(keys, ", "))
	}
	if md.IsDefined("tools") {
		tools, err := ParseTools(strings.Join(c.Tools, ","))
		if err != nil {
			return c, err
		}
		c.Tools = tools
	}
	if md.IsDefined("max_series") {
		if err := CheckMaxSeries(c.MaxSeries); err != nil {
			return c, fmt.Errorf("max_series: %w", err)
		}
	}
	return c, nil
}

// MaxMaxSeries bounds --max-series: beyond it, "bounded" means nothing.
const MaxMaxSeries = 1000000

// CheckMaxSeries checks a --max-series value.
func CheckMaxSeries(n int) error {
	if n < 1 || n > MaxMaxSeries {
		return fmt.Errorf("give a number of series from 1 to %d", MaxMaxSeries)
	}
	return nil
}

// Handler serves /metrics (the Prometheus text format, or OpenMetrics when
// the scraper asks for it), /healthz (the process answers) and /readyz
// (every tool asked for is attached). errLog receives scrape errors.
func Handler(e *Exporter, errLog io.Writer) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(e, collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	page := gatherFunc(func() ([]*dto.MetricFamily, func(), error) { return e.Gather(reg) })
	mux.Handle("/metrics", promhttp.HandlerForTransactional(page, promhttp.HandlerOpts{
		EnableOpenMetrics: true,
		ErrorHandling:     promhttp.ContinueOnError,
		ErrorLog:          log.New(errLog, "bpfkit serve: ", 0),
	}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		tools := e.Running()
		if len(tools) == 0 {
			http.Error(w, "no tool attached", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "ready: %s\n", strings.Join(tools, ","))
	})
	return mux
}

// gatherFunc is a function as a prometheus.TransactionalGatherer.
type gatherFunc func() ([]*dto.MetricFamily, func(), error)

func (f gatherFunc) Gather() ([]*dto.MetricFamily, func(), error) { return f() }

// Run serves e on ln until ctx ends, then stops the server; the caller
// closes e. On SIGHUP it calls reload and applies what it returns; a
// reload that fails is reported on logw and changes nothing.
func Run(ctx context.Context, ln net.Listener, e *Exporter, reload func() (Options, error), logw io.Writer) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	srv := &http.Server{Handler: Handler(e, logw), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	for {
		select {
		case <-ctx.Done():
			stop, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := srv.Shutdown(stop); err != nil {
				srv.Close()
			}
			return nil
		case err := <-served:
			if errors.Is(err, http.ErrServerClosed) {
				return nil
			}
			return err
		case <-hup:
			opts, err := reload()
			if err == nil {
				err = e.Reconfigure(opts)
			}
			if err != nil {
				fmt.Fprintf(logw, "bpfkit serve: reload: %v (the running configuration is kept)\n", err)
				continue
			}
			fmt.Fprintf(logw, "bpfkit serve: reloaded: tools %s, at most %d series per metric\n", strings.Join(e.Running(), ","), e.MaxSeries())
		}
	}
}
