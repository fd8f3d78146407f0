package bio

import (
	"github.com/cilium/ebpf/btf"

	"github.com/bpfkit/bpfkit/pkg/loader"
)

// Request operations (enum req_op, the low 8 bits of cmd_flags; stable).
const (
	opMask        = 0xff
	opRead        = 0
	opWrite       = 1
	opFlush       = 2
	opDiscard     = 3
	opSecureErase = 5
	opWriteSame   = 7 // until 5.18
)

// reqFlags are the cmd_flags bits rwbs shows. Their positions moved
// between kernels (enum req_flag_bits), so they are read from the
// running kernel's BTF.
type reqFlags struct {
	sync, meta, fua, preflush, rahead uint32
}

// kernelReqFlags reads enum req_flag_bits from the kernel's BTF; without
// it, the positions of 5.10 to 6.x (they have not moved there).
func kernelReqFlags() reqFlags {
	bits := map[string]uint32{"__REQ_SYNC": 11, "__REQ_META": 12, "__REQ_FUA": 17, "__REQ_PREFLUSH": 18, "__REQ_RAHEAD": 19}
	if spec, err := loader.KernelBTF(); err == nil {
		var e *btf.Enum
		if spec.TypeByName("req_flag_bits", &e) == nil {
			for _, v := range e.Values {
				if _, ok := bits[v.Name]; ok {
					bits[v.Name] = uint32(v.Value)
				}
			}
		}
	}
	return reqFlags{
		sync:     1 << bits["__REQ_SYNC"],
		meta:     1 << bits["__REQ_META"],
		fua:      1 << bits["__REQ_FUA"],
		preflush: 1 << bits["__REQ_PREFLUSH"],
		rahead:   1 << bits["__REQ_RAHEAD"],
	}
}

// mask is the bits rwbs shows: a histogram is kept per value of these.
func (f reqFlags) mask() uint32 { return opMask | f.sync | f.meta | f.fua | f.preflush | f.rahead }

// appendRWBS appends the request's type as blktrace and the block
// tracepoints write it (the kernel's blk_fill_rwbs): F for a preflush, then
// R read, W write, D discard, DE secure erase, F flush, N other; then F
// FUA, A readahead, S sync, M metadata.
func (f reqFlags) appendRWBS(b []byte, cmd uint32) []byte {
	if cmd&f.preflush != 0 {
		b = append(b, 'F')
	}
	switch cmd & opMask {
	case opWrite, opWriteSame:
		b = append(b, 'W')
	case opDiscard:
		b = append(b, 'D')
	case opSecureErase:
		b = append(b, 'D', 'E')
	case opFlush:
		b = append(b, 'F')
	case opRead:
		b = append(b, 'R')
	default:
		b = append(b, 'N')
	}
	if cmd&f.fua != 0 {
		b = append(b, 'F')
	}
	if cmd&f.rahead != 0 {
		b = append(b, 'A')
	}
	if cmd&f.sync != 0 {
		b = append(b, 'S')
	}
	if cmd&f.meta != 0 {
		b = append(b, 'M')
	}
	return b
}
