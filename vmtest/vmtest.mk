# vmtest.mk — run the Go tests on several Debian kernels in qemu VMs.
# Include from the top-level Makefile:   include vmtest/vmtest.mk
#
#   make vmtest                     all packages × KERNELS + host, table → docs/compat.md
#   make vmtest KERNELS="6.1 7.2"   a subset (major.minor prefixes; "7" = newest 7.x)
#   make vmtest VMTEST_RUNNER=vng   boot through virtme-ng instead of the built-in runner
#   make vmtest-vng                 install virtme-ng and prepare the kernels for it (once)
#   make vmtest-vng-ci              the small vng cell `make ci` runs (one kernel, two packages)
#   make vmtest-fetch               download the kernels into .vmtest/ (once)
#   make vmtest-unit                vmtest's own tests (host; starts qemu; needs root)
#   make vmtest-clean               remove .vmtest/
# See vmtest/README.md.

VMTEST_ROOT   := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/..)
VMTEST_CACHE  ?= $(VMTEST_ROOT)/.vmtest
VMTEST_BIN    := $(VMTEST_CACHE)/bin
KERNELS       ?= 5.10 6.1 6.12 7
VMTEST_RUNNER ?= qemu
VMTEST_PKGS   ?= ./...
VMTEST_HOST   ?= 1
VMTEST_OUT    ?= docs/compat.md
VMTEST_RUN    ?=
VMTEST_TIMEOUT ?= 10m
VMTEST_PARALLEL ?= $(shell nproc 2>/dev/null || echo 2)
VMTEST_FLAGS  ?=
# -test.short in the VMs: under emulation the heaviest tests (exec storms,
# random rule sets) run smaller; the host run is always full.
VMTEST_SHORT  ?= 1
VMTEST_GO     ?= go

export VMTEST_CACHE

# The vng cell of `make ci`: one kernel with modules (virtiofs, virtio_pci
# and veth come from depmod's output) and the packages that run bpfkit's
# binary and load programs.
VMTEST_VNG_CI_KERNEL ?= 6.1
VMTEST_VNG_CI_PKGS   ?= ./pkg/loader ./pkg/trace/opensnoop

.PHONY: vmtest vmtest-fetch vmtest-tools vmtest-unit vmtest-clean vmtest-vng vmtest-vng-ci

vmtest-tools:
	cd $(VMTEST_ROOT) && CGO_ENABLED=0 $(VMTEST_GO) build -o $(VMTEST_BIN)/ ./vmtest/cmd/vmrun ./vmtest/cmd/vminit ./vmtest/cmd/vmtest

vmtest-fetch: vmtest-tools
	$(VMTEST_BIN)/vmtest fetch $(KERNELS)

# Debian's virtme-ng (trixie/sid; apt-get install of the .deb, its
# dependencies and udev from the host's suites), a virtiofsd it can use
# (Debian's, unpacked into .vmtest/virtiofsd) and depmod for the kernels.
vmtest-vng: vmtest-fetch
	$(VMTEST_BIN)/vmtest vng-setup $(KERNELS)

vmtest: vmtest-fetch $(if $(filter vng,$(VMTEST_RUNNER)),vmtest-vng)
	cd $(VMTEST_ROOT) && $(VMTEST_BIN)/vmtest matrix \
		-kernels "$(KERNELS)" -runner $(VMTEST_RUNNER) \
		-host=$(if $(filter 1 true yes,$(VMTEST_HOST)),true,false) \
		-p $(VMTEST_PARALLEL) -timeout $(VMTEST_TIMEOUT) \
		$(if $(VMTEST_RUN),-run '$(VMTEST_RUN)') \
		$(if $(filter 1 true yes,$(VMTEST_SHORT)),-short) \
		$(if $(VMTEST_OUT),-out $(VMTEST_OUT)) \
		$(VMTEST_FLAGS) $(VMTEST_PKGS)

vmtest-vng-ci:
	$(MAKE) vmtest VMTEST_RUNNER=vng KERNELS="$(VMTEST_VNG_CI_KERNEL)" VMTEST_HOST=0 VMTEST_OUT= \
		VMTEST_PKGS="$(VMTEST_VNG_CI_PKGS)"

vmtest-unit:
	cd $(VMTEST_ROOT) && $(VMTEST_GO) test ./vmtest/...

vmtest-clean:
	rm -rf $(VMTEST_CACHE)
