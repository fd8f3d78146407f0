package serve

import (
	"regexp"
	"strconv"
	"strings"
)

// Container is what a cgroup path tells about the container it belongs to.
// The zero value is a cgroup of no known container.
type Container struct {
	ID      string // the runtime's id (64 hex digits), or a machine name for systemd-nspawn
	Runtime string // docker, containerd, cri-o, podman, systemd-nspawn; cri when only the kubelet's layout says it is a container
	PodUID  string // under kubepods: the pod's UID, with dashes
}

// A layout is how one runtime names a container's cgroup directory.
type layout struct {
	runtime string
	re      *regexp.Regexp // one directory name; group 1 is the id
}

const hexID = `([0-9a-f]{64})`

// layouts are the directory names of containers, as each runtime makes
// them with the systemd cgroup driver (NAME.scope) or cgroupfs. conmon's
// scopes (crio-conmon-ID, libpod-conmon-ID) are the runtimes' monitors, not
// the containers, and match none of these.
var layouts = []layout{
	{"docker", regexp.MustCompile(`^docker-` + hexID + `\.scope$`)},
	{"containerd", regexp.MustCompile(`^cri-containerd-` + hexID + `\.scope$`)},
	{"containerd", regexp.MustCompile(`^nerdctl-` + hexID + `\.scope$`)},
	{"cri-o", regexp.MustCompile(`^crio-` + hexID + `(?:\.scope)?$`)},
	{"podman", regexp.MustCompile(`^libpod-` + hexID + `(?:\.scope)?$`)},
	{"systemd-nspawn", regexp.MustCompile(`^systemd-nspawn@(.+)\.service$`)},
	// A machine systemd-nspawn registers when started from a shell;
	// libvirt's machines (qemu-N-NAME, lxc-N-NAME) are refused below.
	{"systemd-nspawn", regexp.MustCompile(`^machine-(.+)\.scope$`)},
}

var (
	bareID = regexp.MustCompile(`^` + hexID + `$`)
	// pod<UID> (cgroupfs) or [kubelet-]kubepods[-QOS]-pod<UID with _>.slice (systemd).
	podDir = regexp.MustCompile(`^(?:[a-z]+-)*pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})(?:\.slice)?$`)
)

// ParseContainer reads the container, if any, from a cgroup path relative
// to the cgroup2 mount ("/system.slice/docker-ID.scope"). A path below a
// container's directory (a container's own sub-cgroups) belongs to it.
func ParseContainer(path string) Container {
	var c Container
	dirs := strings.Split(strings.Trim(path, "/"), "/")
	kube := false
	for i, d := range dirs {
		kube = kube || strings.Contains(d, "kubepods")
		if kube {
			if m := podDir.FindStringSubmatch(d); m != nil {
				c.PodUID = strings.ReplaceAll(m[1], "_", "-")
				continue
			}
		}
		if r, id := matchLayout(d); r != "" {
			c.Runtime, c.ID = r, id
			continue
		}
		// cgroupfs layouts name a container by its bare id: docker puts it
		// under /docker, the kubelet under the pod's directory.
		if m := bareID.FindStringSubmatch(d); m != nil && i > 0 {
			switch {
			case dirs[i-1] == "docker":
				c.Runtime, c.ID = "docker", m[1]
			case kube && podDir.MatchString(dirs[i-1]):
				c.Runtime, c.ID = "cri", m[1]
			}
		}
	}
	return c
}

func matchLayout(dir string) (runtime, id string) {
	for _, l := range layouts {
		m := l.re.FindStringSubmatch(dir)
		if m == nil {
			continue
		}
		id := m[1]
		if l.runtime == "systemd-nspawn" {
			id = unescapeUnit(id)
			if strings.HasPrefix(id, "qemu-") || strings.HasPrefix(id, "lxc-") {
				return "", ""
			}
		}
		return l.runtime, id
	}
	return "", ""
}

// unescapeUnit undoes systemd's \xNN escapes in a unit name ("\x2d" is -).
func unescapeUnit(s string) string {
	if !strings.Contains(s, `\x`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && s[i+1] == 'x' {
			if n, err := strconv.ParseUint(s[i+2:i+4], 16, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
