package bpfkit

// Every BPF object in one place. Outputs land beside the Go package that
// loads them; clang is pinned so regenerating gives identical bytes.
//
// Run with `make generate` (needs clang-19, llvm-19 and libbpf-dev).

//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -target bpfel -no-global-types -cflags "-O2 -g -Wall -Werror -Ibpf/include -Ibpf" -output-dir pkg/trace/opensnoop -go-package opensnoop -type open_event opensnoop bpf/opensnoop.bpf.c
//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -target bpfel -no-global-types -cflags "-O2 -g -Wall -Werror -Ibpf/include -Ibpf" -output-dir pkg/trace/execsnoop -go-package execsnoop -type exec_event -type exit_event execsnoop bpf/execsnoop.bpf.c
