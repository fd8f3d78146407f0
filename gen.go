package bpfkit

// Every BPF object in one place. Outputs land beside the Go package that
// loads them; clang is pinned so regenerating gives identical bytes.
//
// Run with `make generate` (needs clang-19, llvm-19 and libbpf-dev).

//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -target bpfel -no-global-types -cflags "-O2 -g -Wall -Werror -Ibpf/include -Ibpf" -output-dir pkg/trace/opensnoop -go-package opensnoop -type open_event opensnoop bpf/opensnoop.bpf.c
//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -target bpfel -no-global-types -cflags "-O2 -g -Wall -Werror -Ibpf/include -Ibpf" -output-dir pkg/xdp -go-package xdp -type xdpf_config -type xdpf_lpm4_key -type xdpf_lpm6_key -type xdpf_addr_key -type xdpf_match_key -type xdpf_verdict -type xdpf_ac -type xdpf_inline -type xdpf_class -type xdpf_lens -type xdpf_pfx4_key -type xdpf_pfx6_key -type xdpf_counter -type xdpf_rule xdpFilter bpf/xdp_filter.bpf.c
//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -target bpfel -no-global-types -cflags "-O2 -g -Wall -Werror -Ibpf/include -Ibpf" -output-dir pkg/trace/filetop -go-package filetop -type file_key -type file_stat -type file_id -type file_path filetop bpf/filetop.bpf.c
//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -target bpfel -no-global-types -cflags "-O2 -g -Wall -Werror -Ibpf/include -Ibpf" -output-dir pkg/trace/cswitch -go-package cswitch -type cswitch_count cswitch bpf/cswitch.bpf.c
//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -target bpfel -no-global-types -cflags "-O2 -g -Wall -Werror -Ibpf/include -Ibpf" -output-dir pkg/trace/runqlat -go-package runqlat -type runqlat_hist runqlat bpf/runqlat.bpf.c
//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -target bpfel -no-global-types -cflags "-O2 -g -Wall -Werror -Ibpf/include -Ibpf" -output-dir pkg/trace/offcputime -go-package offcputime -type offcpu_key -type offcpu_val offcputime bpf/offcputime.bpf.c
//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -target bpfel -no-global-types -cflags "-O2 -g -Wall -Werror -Ibpf/include -Ibpf" -output-dir pkg/trace/schedrecord -go-package schedrecord -type sched_event schedrecord bpf/schedrecord.bpf.c
//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -target bpfel -no-global-types -cflags "-O2 -g -Wall -Werror -Ibpf/include -Ibpf" -output-dir pkg/trace/execsnoop -go-package execsnoop -type exec_event -type exit_event execsnoop bpf/execsnoop.bpf.c
//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -target bpfel -no-global-types -cflags "-O2 -g -Wall -Werror -Ibpf/include -Ibpf" -output-dir pkg/trace/syscount -go-package syscount -type syscount_key -type syscount_val syscount bpf/syscount.bpf.c
//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -target bpfel -no-global-types -cflags "-O2 -g -Wall -Werror -Ibpf/include -Ibpf" -output-dir pkg/trace/zombies -go-package zombies -type zombie_event zombies bpf/zombies.bpf.c
//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -target bpfel -no-global-types -cflags "-O2 -g -Wall -Werror -Ibpf/include -Ibpf" -output-dir internal/serve -go-package serve serveExec bpf/serve_exec.bpf.c
//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -target bpfel -no-global-types -cflags "-O2 -g -Wall -Werror -Ibpf/include -Ibpf" -output-dir internal/serve -go-package serve -type serve_exit_key serveExit bpf/serve_exit.bpf.c
//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -target bpfel -no-global-types -cflags "-O2 -g -Wall -Werror -Ibpf/include -Ibpf" -output-dir internal/serve -go-package serve -type serve_cswitch serveCswitch bpf/serve_cswitch.bpf.c
//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -target bpfel -no-global-types -cflags "-O2 -g -Wall -Werror -Ibpf/include -Ibpf" -output-dir internal/serve -go-package serve -type serve_hist serveRunqlat bpf/serve_runqlat.bpf.c
//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -target bpfel -no-global-types -cflags "-O2 -g -Wall -Werror -Ibpf/include -Ibpf" -output-dir internal/serve -go-package serve -type serve_fileio serveFileio bpf/serve_fileio.bpf.c
//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -target bpfel -no-global-types -cflags "-O2 -g -Wall -Werror -Ibpf/include -Ibpf" -output-dir internal/serve -go-package serve -type serve_errno_key serveOpenerr bpf/serve_openerr.bpf.c
//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -target bpfel -no-global-types -cflags "-O2 -g -Wall -Werror -Ibpf/include -Ibpf" -output-dir pkg/trace/bio -go-package bio -type bio_start -type bio_event -type bio_hist_key -type bio_hist -type bio_top_key -type bio_top_val bio bpf/bio.bpf.c
//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -target bpfel -no-global-types -cflags "-O2 -g -Wall -Werror -Ibpf/include -Ibpf" -output-dir pkg/trace/oomkill -go-package oomkill -type oom_event oomkill bpf/oomkill.bpf.c
