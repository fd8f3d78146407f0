// Package serve benchmarks `bpfkit serve`: one scrape of 10,000 series
// (BenchmarkScrape) and its idle cost (run.sh).
package serve

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

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

	makeSeries(b, root, cgroups)

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

// makeSeries makes n cgroups below the cgroup2 mount root and does one
// failed open (ELOOP) in each: n series of bpfkit_open_errors_total for
// a serve running openerr. The cgroups are removed when b ends.
func makeSeries(b *testing.B, root string, n int) {
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
	dirs := make([]string, n)
	b.Cleanup(func() {
		os.WriteFile(filepath.Join(home, "cgroup.procs"), pid, 0)
		for _, d := range dirs {
			if d != "" {
				unix.Rmdir(d)
			}
		}
		unix.Rmdir(parent)
	})
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
}

// BenchmarkServeProcess: the same 10,000 series scraped over HTTP (as
// Prometheus does: gzip) from a real `bpfkit serve --tools openerr`
// process (this tree's, or $BPFKIT): time per scrape, the process's CPU
// time per scrape, and its peak and current resident memory (VmHWM,
// VmRSS) after them.
func BenchmarkServeProcess(b *testing.B) {
	testkit.RequireRoot(b)
	const cgroups = 10000
	root, err := loader.Cgroup2Root()
	if err != nil {
		b.Fatal(err)
	}
	bin := os.Getenv("BPFKIT") // another build to compare; default: this tree's
	if bin == "" {
		bin = filepath.Join(b.TempDir(), "bpfkit")
		if out, err := exec.Command("go", "build", "-o", bin, "github.com/bpfkit/bpfkit/cmd/bpfkit").CombinedOutput(); err != nil {
			b.Fatalf("go build: %v\n%s", err, out)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "serve", "--tools", "openerr", "--max-series", strconv.Itoa(2*cgroups), "--listen", addr)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Signal(unix.SIGTERM)
		cmd.Wait()
	})
	url := "http://" + addr
	get := func(path string) (int, string) {
		resp, err := http.Get(url + path) // asks for gzip, and decompresses
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if code, _ := get("/readyz"); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("serve not ready after 30s")
		}
	}
	makeSeries(b, root, cgroups)
	scrape := func() int {
		code, body := get("/metrics")
		if code != 200 {
			b.Fatalf("status %d: %s", code, body)
		}
		return strings.Count(body, "\nbpfkit_open_errors_total{")
	}
	if n := scrape(); n < cgroups {
		b.Fatalf("%d series of bpfkit_open_errors_total, want at least %d", n, cgroups)
	}
	// CPU time of the serve process (utime+stime), less at the mercy of a
	// loaded machine than the wall time per scrape.
	cpu := func() float64 {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
		if err != nil {
			b.Fatal(err)
		}
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
		utime, _ := strconv.ParseFloat(f[11], 64)
		stime, _ := strconv.ParseFloat(f[12], 64)
		return (utime + stime) / 100 // USER_HZ
	}
	cpu0 := cpu()
	b.ResetTimer()
	for b.Loop() {
		scrape()
	}
	b.StopTimer()
	b.ReportMetric((cpu()-cpu0)*1000/float64(b.N), "cpu-ms/scrape")
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(status), "\n") {
		for _, f := range []string{"VmHWM", "VmRSS"} {
			if v, ok := strings.CutPrefix(l, f+":"); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
				b.ReportMetric(kb/1024, f+"-MiB")
			}
		}
	}
}
