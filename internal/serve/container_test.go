package serve

import "testing"

// Each runtime's exact cgroup layout, as it creates it (systemd and
// cgroupfs drivers, rootful and rootless, nested sub-cgroups).
func TestParseContainer(t *testing.T) {
	const (
		id  = "4f1c2b9e8d7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c"
		uid = "0a1b2c3d-4e5f-6789-abcd-ef0123456789"
		us  = "0a1b2c3d_4e5f_6789_abcd_ef0123456789" // the UID as systemd slices spell it
	)
	for _, tc := range []struct {
		layout, path string
		want         Container
	}{
		{"docker, systemd driver", "/system.slice/docker-" + id + ".scope", Container{ID: id, Runtime: "docker"}},
		{"docker, cgroupfs driver", "/docker/" + id, Container{ID: id, Runtime: "docker"}},
		{"docker, a container's sub-cgroup", "/system.slice/docker-" + id + ".scope/init.scope", Container{ID: id, Runtime: "docker"}},
		{"containerd (nerdctl), systemd", "/system.slice/nerdctl-" + id + ".scope", Container{ID: id, Runtime: "containerd"}},
		{"kubernetes containerd, systemd", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + us + ".slice/cri-containerd-" + id + ".scope", Container{ID: id, Runtime: "containerd", PodUID: uid}},
		{"kubernetes containerd, systemd, guaranteed", "/kubepods.slice/kubepods-pod" + us + ".slice/cri-containerd-" + id + ".scope", Container{ID: id, Runtime: "containerd", PodUID: uid}},
		{"kubernetes in kind (kubelet.slice)", "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod" + us + ".slice/cri-containerd-" + id + ".scope", Container{ID: id, Runtime: "containerd", PodUID: uid}},
		{"kubernetes, cgroupfs driver", "/kubepods/burstable/pod" + uid + "/" + id, Container{ID: id, Runtime: "cri", PodUID: uid}},
		{"kubernetes, cgroupfs, guaranteed", "/kubepods/pod" + uid + "/" + id, Container{ID: id, Runtime: "cri", PodUID: uid}},
		{"kubernetes pod, no container", "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + us + ".slice", Container{PodUID: uid}},
		{"kubernetes docker (dockershim), systemd", "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + us + ".slice/docker-" + id + ".scope", Container{ID: id, Runtime: "docker", PodUID: uid}},
		{"cri-o, systemd", "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + us + ".slice/crio-" + id + ".scope", Container{ID: id, Runtime: "cri-o", PodUID: uid}},
		{"cri-o, cgroupfs", "/kubepods/besteffort/pod" + uid + "/crio-" + id, Container{ID: id, Runtime: "cri-o", PodUID: uid}},
		{"cri-o conmon is not the container", "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + us + ".slice/crio-conmon-" + id + ".scope", Container{PodUID: uid}},
		{"podman rootful, systemd", "/machine.slice/libpod-" + id + ".scope", Container{ID: id, Runtime: "podman"}},
		{"podman, cgroupns sub-cgroup", "/machine.slice/libpod-" + id + ".scope/container", Container{ID: id, Runtime: "podman"}},
		{"podman rootless", "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + id + ".scope", Container{ID: id, Runtime: "podman"}},
		{"podman, cgroupfs", "/libpod_parent/libpod-" + id, Container{ID: id, Runtime: "podman"}},
		{"podman conmon is not the container", "/machine.slice/libpod-conmon-" + id + ".scope", Container{}},
		{"systemd-nspawn as a service", `/machine.slice/systemd-nspawn@web\x2d1.service`, Container{ID: "web-1", Runtime: "systemd-nspawn"}},
		{"systemd-nspawn from a shell", `/machine.slice/machine-web\x2d1.scope`, Container{ID: "web-1", Runtime: "systemd-nspawn"}},
		{"systemd-nspawn, payload", `/machine.slice/systemd-nspawn@db.service/payload/system.slice`, Container{ID: "db", Runtime: "systemd-nspawn"}},
		{"libvirt machine is no nspawn", `/machine.slice/machine-qemu\x2d1\x2dvm.scope`, Container{}},
		{"a service", "/system.slice/ssh.service", Container{}},
		{"root", "/", Container{}},
		{"a short hex name", "/docker/4f1c2b", Container{}},
		{"upper-case hex is no id", "/docker/" + "4F1C2B9E8D7A6B5C4D3E2F1A0B9C8D7E6F5A4B3C2D1E0F9A8B7C6D5E4F3A2B1C", Container{}},
		{"bare id outside docker and kubepods", "/system.slice/" + id, Container{}},
		{"pod-like name outside kubepods", "/system.slice/pod" + uid, Container{}},
	} {
		if got := ParseContainer(tc.path); got != tc.want {
			t.Errorf("%s: ParseContainer(%q) = %+v, want %+v", tc.layout, tc.path, got, tc.want)
		}
	}
}
