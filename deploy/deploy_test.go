// Package deploy holds the manifests that run `bpfkit serve` on fleets;
// its test validates them.
package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/bpfkit/bpfkit/internal/serve"
)

// port is serve's default port, which every manifest uses.
var port = serve.DefaultListen[strings.LastIndex(serve.DefaultListen, ":")+1:]

// strict decodes a manifest into a Kubernetes API type: an unknown or
// repeated field is an error.
func strict(t *testing.T, file string, into any) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, into); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

func TestHostDaemonSet(t *testing.T) {
	var ds appsv1.DaemonSet
	strict(t, "kubernetes/daemonset.yaml", &ds)
	if ds.APIVersion != "apps/v1" || ds.Kind != "DaemonSet" {
		t.Fatalf("%s %s", ds.APIVersion, ds.Kind)
	}
	spec := ds.Spec.Template.Spec
	if !spec.HostPID {
		t.Error("hostPID is not set")
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers", len(spec.Containers))
	}
	c := spec.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.Capabilities == nil || sc.Privileged != nil && *sc.Privileged {
		t.Fatal("no capabilities, or privileged")
	}
	var add []string
	for _, c := range sc.Capabilities.Add {
		add = append(add, string(c))
	}
	slices.Sort(add)
	if want := []string{"BPF", "DAC_READ_SEARCH", "PERFMON"}; !slices.Equal(add, want) {
		t.Errorf("capabilities %v, want exactly %v", add, want)
	}
	if len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
		t.Errorf("drop %v, want ALL", sc.Capabilities.Drop)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation must be false")
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
		if !m.ReadOnly {
			t.Errorf("mount %s is writable", m.MountPath)
		}
	}
	for _, v := range spec.Volumes {
		if v.HostPath == nil || mounts[v.Name] != v.HostPath.Path {
			t.Errorf("volume %s: host path %v mounted at %q", v.Name, v.HostPath, mounts[v.Name])
		}
		delete(mounts, v.Name)
	}
	for _, want := range []string{"/sys/fs/bpf", "/sys/kernel/tracing", "/sys/fs/cgroup"} {
		if !slices.ContainsFunc(spec.Volumes, func(v corev1.Volume) bool { return v.HostPath != nil && v.HostPath.Path == want }) {
			t.Errorf("no host mount of %s", want)
		}
	}
	if len(mounts) > 0 {
		t.Errorf("mounts without volumes: %v", mounts)
	}
	if got := strings.Join(c.Args, " "); got != "serve --listen :"+port {
		t.Errorf("args %q", got)
	}
	if len(c.Ports) != 1 || c.Ports[0].ContainerPort != int32(atoi(t, port)) {
		t.Errorf("ports %+v", c.Ports)
	}
	scrape(t, ds.Spec.Template.Annotations)
}

func TestHostService(t *testing.T) {
	var svc corev1.Service
	strict(t, "kubernetes/service.yaml", &svc)
	if svc.APIVersion != "v1" || svc.Kind != "Service" {
		t.Fatalf("%s %s", svc.APIVersion, svc.Kind)
	}
	var ds appsv1.DaemonSet
	strict(t, "kubernetes/daemonset.yaml", &ds)
	for k, v := range svc.Spec.Selector {
		if ds.Spec.Template.Labels[k] != v {
			t.Errorf("selector %s=%s matches no pod of the DaemonSet", k, v)
		}
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != int32(atoi(t, port)) || svc.Spec.Ports[0].TargetPort.StrVal != "metrics" {
		t.Errorf("ports %+v", svc.Spec.Ports)
	}
	scrape(t, svc.Annotations)
}

// scrape checks the prometheus.io annotations.
func scrape(t *testing.T, a map[string]string) {
	t.Helper()
	if a["prometheus.io/scrape"] != "true" || a["prometheus.io/port"] != port || a["prometheus.io/path"] != "/metrics" {
		t.Errorf("annotations %v", a)
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			t.Fatalf("port %q", s)
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// unit reads a systemd unit's settings (key -> values, in order).
func unit(t *testing.T, file string) map[string][]string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, l := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(l, "#") {
			out[k] = append(out[k], v)
		}
	}
	return out
}

func TestHostSystemdUnit(t *testing.T) {
	u := unit(t, "systemd/bpfkit.service")
	want := "CAP_BPF CAP_PERFMON CAP_DAC_READ_SEARCH"
	for _, k := range []string{"AmbientCapabilities", "CapabilityBoundingSet"} {
		if len(u[k]) != 1 || u[k][0] != want {
			t.Errorf("%s=%v, want %s", k, u[k], want)
		}
	}
	for k, v := range map[string]string{
		"ProtectSystem": "strict", "NoNewPrivileges": "yes", "ProtectHome": "yes",
		"PrivateDevices": "yes", "ProtectKernelModules": "yes", "RestrictSUIDSGID": "yes",
		"ExecReload": "/bin/kill -HUP $MAINPID",
	} {
		if len(u[k]) != 1 || u[k][0] != v {
			t.Errorf("%s=%v, want %s", k, u[k], v)
		}
	}
	if len(u["User"]) != 1 || u["User"][0] == "root" {
		t.Errorf("User=%v: a user of its own", u["User"])
	}
	if len(u["ExecStart"]) != 1 || !strings.HasSuffix(u["ExecStart"][0], "serve --listen "+serve.DefaultListen) {
		t.Errorf("ExecStart=%v", u["ExecStart"])
	}

	// systemd's own check, with ExecStart pointing at an executable that
	// exists (this test binary).
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("no systemd-analyze: the unit was checked field by field above")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile("systemd/bpfkit.service")
	file := filepath.Join(t.TempDir(), "bpfkit.service")
	os.WriteFile(file, []byte(strings.ReplaceAll(string(data), "/usr/local/bin/bpfkit", self)), 0o644)
	out, err := exec.Command(analyze, "verify", "--man=no", file).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

func TestHostContainerfile(t *testing.T) {
	data, err := os.ReadFile("Containerfile")
	if err != nil {
		t.Fatal(err)
	}
	var from []string
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == "FROM" {
			from = append(from, strings.Join(f[1:], " "))
		}
	}
	if !slices.Equal(from, []string{"scratch"}) {
		t.Errorf("FROM %v, want one FROM scratch", from)
	}
	if !strings.Contains(string(data), `CMD ["serve", "--listen", ":`+port+`"]`) {
		t.Error("CMD does not serve on the default port")
	}
}
