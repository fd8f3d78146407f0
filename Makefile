# bpfkit — every target runs as root on Debian 12 (bookworm) or newer.
# `make run` and `make ci` install what they need first (see `deps`).

GO        ?= go
CLANG     ?= clang-19
BIN       := bin/bpfkit
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
GOFLAGS_BUILD := -trimpath -ldflags "-s -w -X main.version=$(VERSION)"
# Debian packages the tests need (running bpfkit needs none: the BPF
# objects are committed and `go build` is enough). Installed without
# recommended packages: qemu's GUI is not needed to boot test kernels,
# and prometheus (the real scraper of serve's tests) needs no exporters.
# malloc's tests build their workload (libc6-dev: -static) and run it under
# jemalloc, tcmalloc and mimalloc by LD_PRELOAD.
APT_PACKAGES := clang-19 llvm-19 libbpf-dev bpftool iproute2 qemu-system-x86 cpio xz-utils zstd prometheus libc6-dev libjemalloc2 libtcmalloc-minimal4 libmimalloc2.0 kmod
# Extra arguments for `make run`, e.g. make run ARGS="-F -p 1234".
ARGS ?=

.PHONY: all deps deps-go generate testdata-malloc build run test check-generated lint bench ci clean

all: build

## deps: install the Debian packages and Go modules the tests need.
deps: deps-go
	$(GO) build -o /dev/null honnef.co/go/tools/cmd/staticcheck
	@dpkg -s $(APT_PACKAGES) >/dev/null 2>&1 || { \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(APT_PACKAGES); }

## deps-go: the Go modules (all that building and running bpfkit needs).
deps-go:
	$(GO) mod download

## generate: compile bpf/*.bpf.c with the pinned clang into the committed bpf2go outputs.
generate:
	$(GO) generate ./...

## testdata-malloc: the static workload malloc's tests run in the VMs (committed; no compiler there).
testdata-malloc:
	$(CLANG) -O1 -fno-omit-frame-pointer -fno-builtin -static -o pkg/trace/malloc/testdata/workload-static pkg/trace/malloc/testdata/workload.c

## build: the bpfkit binary (needs no clang: the BPF objects are committed).
build:
	$(GO) build $(GOFLAGS_BUILD) -o $(BIN) ./cmd/bpfkit

## run: the main job — build and start `bpfkit opensnoop` (Ctrl-C stops it).
run: deps-go build
	./$(BIN) opensnoop $(ARGS)

## test: every test, privileged ones included (run as root).
test:
	$(GO) test -count=1 -timeout 20m ./...

## check-generated: regenerate the BPF objects and fail if they differ from the committed ones.
check-generated: generate
	@git diff --exit-code -- '*_bpfel.go' '*_bpfel.o' || { \
		echo "generated BPF objects are stale: run 'make generate' and commit the result" >&2; exit 1; }
	@test -z "$$(git status --porcelain -- '*_bpfel.go' '*_bpfel.o')" || { \
		git status --porcelain -- '*_bpfel.go' '*_bpfel.o'; echo "untracked generated files: commit them" >&2; exit 1; }

## lint: gofmt, go vet and staticcheck (pinned as a tool in go.mod).
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); test -z "$$out" || { echo "gofmt needed:"; echo "$$out"; exit 1; }
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

## bench: the speed comparisons against peers (bench/*/run.sh; bench/xdp/README.md).
bench: build
	./bench/run.sh

## ci: what .ci/run does on a fresh machine: install, check, and test once
## on the host (the matrix's host column) and in VMs on every kernel of
## vmtest/vmtest.mk; vmtest's own tests (they start qemu) run on the host;
## then one kernel through virtme-ng (vmtest-vng-ci), so that path cannot
## silently break.
ci: deps check-generated lint vmtest-unit vmtest vmtest-vng-ci

clean:
	rm -rf bin

include vmtest/vmtest.mk
