// Package serve benchmarks `bpfkit serve`: one scrape of 10,000 series
// (BenchmarkScrape) and its idle cost (run.sh).
package serve

import (
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/bpfkit/bpfkit/internal/serve"
	"github.com/bpfkit/bpfkit/internal/testkit"
	"github.com/bpfkit/bpfkit/pkg/loader"
)

// BenchmarkScrape: GET /metrics of serve running openerr, after one failed
// open (ELOOP) in each of 10,000 cgroups: 10,000 series of
// bpfkit_open_errors_total plus the few of the machine. The cgroup tree
// was walked before the timer starts, as after serve's first scrape.
func BenchmarkScrape(b *testing.B) {
	testkit.RequireRoot(b)
	const cgroups = 10000
	root, err := loader.Cgroup2Root()
	if err != nil {
		b.Fatal(err)
	}
	e, err := serve.New(serve.Options{Tools: []string{"openerr"}, MaxSeries: 2 * cgroups})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()

	own, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		b.Fatal(err)
	}
	home := ""
	for _, l := range strings.Split(string(own), "\n") {
		if p, ok := strings.CutPrefix(l, "0::"); ok {
			home = root + p
		}
	}
	parent := filepath.Join(root, fmt.Sprintf("bpfkit-bench-%d", os.Getpid()))
	if err := os.Mkdir(parent, 0o755); err != nil {
		b.Fatal(err)
	}
	link := filepath.Join(b.TempDir(), "link")
	os.Symlink("/", link)
	pid := []byte(strconv.Itoa(os.Getpid()))
	dirs := make([]string, cgroups)
	defer func() {
		os.WriteFile(filepath.Join(home, "cgroup.procs"), pid, 0)
		for _, d := range dirs {
			if d != "" {
				unix.Rmdir(d)
			}
		}
		unix.Rmdir(parent)
	}()
	for i := range dirs {
		dirs[i] = filepath.Join(parent, fmt.Sprintf("c%05d", i))
		if err := os.Mkdir(dirs[i], 0o755); err != nil {
			b.Fatal(err)
		}
		// The whole process moves: its next open counts in that cgroup.
		if err := os.WriteFile(filepath.Join(dirs[i], "cgroup.procs"), pid, 0); err != nil {
			b.Fatal(err)
		}
		unix.Open(link, unix.O_RDONLY|unix.O_NOFOLLOW, 0)
	}
	if err := os.WriteFile(filepath.Join(home, "cgroup.procs"), pid, 0); err != nil {
		b.Fatal(err)
	}

	h := serve.Handler(e, os.Stderr)
	scrape := func() int {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
		if w.Code != 200 {
			b.Fatalf("status %d", w.Code)
		}
		return strings.Count(w.Body.String(), "\nbpfkit_open_errors_total{")
	}
	if n := scrape(); n < cgroups {
		b.Fatalf("%d series of bpfkit_open_errors_total, want at least %d", n, cgroups)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		scrape()
	}
	b.StopTimer()
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	b.ReportMetric(float64(ru.Maxrss)/1024, "maxRSS-MiB")
}
