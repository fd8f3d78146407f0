package output

import (
	"fmt"
	"strings"
)

// Log2Bounds is the range of log2 bucket i the way bcc prints it: bucket 0
// is 0-1, then 2-3, 4-7, 8-15...
func Log2Bounds(i int) (low, high uint64) {
	low, high = (uint64(1)<<(i+1))>>1, (uint64(1)<<(i+1))-1
	if low == high {
		low--
	}
	return low, high
}

// usedBuckets is the number of buckets up to the last non-empty one.
func usedBuckets(buckets []uint64) int {
	n := 0
	for i, c := range buckets {
		if c > 0 {
			n = i + 1
		}
	}
	return n
}

// AppendLog2Hist appends a log2 histogram as bcc's tools print it: one line
// per bucket up to the last non-empty one, with a bar of stars scaled to
// the largest count. unit names the values, e.g. "usecs".
func AppendLog2Hist(dst []byte, buckets []uint64, unit string) []byte {
	const starsMax = 40
	n := usedBuckets(buckets)
	if n == 0 {
		return dst
	}
	var most uint64
	for _, c := range buckets[:n] {
		most = max(most, c)
	}
	width, head, name := 10, 5, 19
	if n > 32 {
		width, head, name = 20, 15, 29
	}
	dst = fmt.Appendf(dst, "%*s%-*s : count    distribution\n", head, "", name, unit)
	for i, c := range buckets[:n] {
		low, high := Log2Bounds(i)
		bar := strings.Repeat("*", int(c*starsMax/most))
		dst = fmt.Appendf(dst, "%*d -> %-*d : %-8d |%-*s|\n", width, low, width, high, c, starsMax, bar)
	}
	return dst
}

// AppendLog2JSON appends a log2 histogram as a JSON array of
// {"low","high","count"} up to the last non-empty bucket.
func AppendLog2JSON(dst []byte, buckets []uint64) []byte {
	dst = append(dst, '[')
	for i, c := range buckets[:usedBuckets(buckets)] {
		if i > 0 {
			dst = append(dst, ',')
		}
		low, high := Log2Bounds(i)
		dst = append(dst, `{"low":`...)
		dst = AppendUint(dst, low)
		dst = append(dst, `,"high":`...)
		dst = AppendUint(dst, high)
		dst = append(dst, `,"count":`...)
		dst = AppendUint(dst, c)
		dst = append(dst, '}')
	}
	return append(dst, ']')
}
