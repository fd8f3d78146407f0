package trace

import "unsafe"

// unsafeBytes views a C char array (int8 in bpf2go's output) as bytes
// without copying.
func unsafeBytes[T ~int8 | ~uint8](b []T) []byte {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&b[0])), len(b))
}
