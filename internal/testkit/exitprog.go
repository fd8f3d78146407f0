package testkit

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// ExitProgram writes a tiny static program into a temporary directory (removed
// when the test ends) and returns its path. Run with one argument, it exits
// at once with the number formed by the argument's decimal digits, modulo
// 256 ("storm-1234" exits 210); with none, it exits 0. It has no libc, no
// dynamic loader and no runtime: one page mapped, one system call. A test
// that execs thousands of processes pays for the exec and not for a Go
// runtime starting (the test binary re-executed takes ~3ms to start here).
//
// It is written by the test binary itself, so it is there wherever the test
// runs, in a vmtest guest too, with no compiler. x86-64 only.
func ExitProgram(t testing.TB) string {
	t.Helper()
	return staticProgram(t, "bk-exit", exitCode)
}

// PauseProgram writes a tiny static program, as ExitProgram does, that
// waits in pause(2) until a signal ends it (comm bk-pause), and returns its
// path. x86-64 only.
func PauseProgram(t testing.TB) string {
	t.Helper()
	return staticProgram(t, "bk-pause", pauseCode)
}

// pauseCode is PauseProgram's x86-64 code: pause(2) again and again (a
// signal that does not end the program returns from it).
var pauseCode = []byte{
	0xb8, 0x22, 0x00, 0x00, 0x00, // 0: mov  $34,%eax  SYS_pause
	0x0f, 0x05, //                   5: syscall
	0xeb, 0xf7, //                   7: jmp  0
}

// staticProgram writes code as the static program name (its comm when it
// runs) into a temporary directory, removed when the test ends, and
// returns its path.
func staticProgram(t testing.TB, name string, code []byte) string {
	t.Helper()
	if runtime.GOARCH != "amd64" {
		Skip(t, "%s has machine code for amd64 only, not %s", name, runtime.GOARCH)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, staticELF(code), 0o755); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
	return path
}

// exitCode is the program's x86-64 code. At the entry point the kernel
// leaves argc at (%rsp), then argv[0], argv[1]... The digits of argv[1]
// are accumulated in %edi (other bytes are skipped), and exit_group(%edi)
// keeps its low 8 bits as the exit status.
var exitCode = []byte{
	0x48, 0x8b, 0x74, 0x24, 0x10, //  0: mov  0x10(%rsp),%rsi  argv[1] (NULL without arguments)
	0x31, 0xff, //                     5: xor  %edi,%edi        n = 0
	0x48, 0x85, 0xf6, //               7: test %rsi,%rsi
	0x74, 0x19, //                    10: je   37 (exit)
	0x0f, 0xb6, 0x06, //              12: movzbl (%rsi),%eax   loop: c = *p
	0x84, 0xc0, //                    15: test %al,%al
	0x74, 0x12, //                    17: je   37 (exit)       end of the string
	0x48, 0xff, 0xc6, //              19: inc  %rsi            p++
	0x83, 0xe8, 0x30, //              22: sub  $'0',%eax
	0x83, 0xf8, 0x09, //              25: cmp  $9,%eax
	0x77, 0xee, //                    28: ja   12 (loop)       not a digit (unsigned compare)
	0x6b, 0xff, 0x0a, //              30: imul $10,%edi,%edi
	0x01, 0xc7, //                    33: add  %eax,%edi       n = n*10 + digit
	0xeb, 0xe7, //                    35: jmp  12 (loop)
	0xb8, 0xe7, 0x00, 0x00, 0x00, //  37: mov  $231,%eax       exit: SYS_exit_group
	0x0f, 0x05, //                    42: syscall
}

// staticELF returns an ELF executable: the header, one loadable segment
// mapping the whole file read+execute, and code as the entry point.
func staticELF(code []byte) []byte {
	const base = 0x400000
	hdrs := binary.Size(elf.Header64{}) + binary.Size(elf.Prog64{})
	size := uint64(hdrs + len(code))
	h := elf.Header64{
		Type: uint16(elf.ET_EXEC), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
		Entry: base + uint64(hdrs), Phoff: uint64(binary.Size(elf.Header64{})),
		Ehsize:    uint16(binary.Size(elf.Header64{})),
		Phentsize: uint16(binary.Size(elf.Prog64{})), Phnum: 1,
	}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	h.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	h.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	p := elf.Prog64{
		Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R | elf.PF_X),
		Vaddr: base, Paddr: base, Filesz: size, Memsz: size, Align: 0x1000,
	}
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, h)
	binary.Write(&b, binary.LittleEndian, p)
	b.Write(code)
	return b.Bytes()
}
