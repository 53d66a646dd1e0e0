package ebpf

// The generated filter_bpfel.go / filter_bpfel.o are checked in so that a
// plain `go build` needs no clang. Regenerate with `make ebpf` (needs clang,
// llvm-strip and libbpf headers: Debian clang, llvm, libbpf-dev). Only the
// little-endian target is generated (amd64, arm64, riscv64, ...).
// The -idirafter flags let <linux/types.h> find <asm/types.h> on Debian
// multiarch hosts (amd64 or arm64); the BPF output does not depend on it.
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -target bpfel -cc clang -strip llvm-strip filter bpf/filter.c -- -O2 -g -Wall -Werror -idirafter /usr/include/x86_64-linux-gnu -idirafter /usr/include/aarch64-linux-gnu
