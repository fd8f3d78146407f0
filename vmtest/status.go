package vmtest

import (
	"bufio"
	"io"
	"strconv"
	"strings"

	"github.com/bpfkit/bpfkit/vmtest/guest"
)

// OutputFilter copies the guest's test output to w line by line until it sees
// the status line written by the init, whose exit code it returns. ok is
// false if the stream ended without a status line. Text before the status
// marker on the same line (output without a trailing newline) is kept.
func OutputFilter(r io.Reader, w io.Writer, nonce string) (code int, ok bool, err error) {
	prefix := guest.StatusPrefix(nonce)
	br := bufio.NewReaderSize(r, 64*1024)
	for {
		line, rerr := br.ReadString('\n')
		if i := strings.Index(line, prefix); i >= 0 {
			if i > 0 {
				if _, err := io.WriteString(w, line[:i]+"\n"); err != nil {
					return 0, false, err
				}
			}
			code, ok := ParseStatus(line[i:], nonce)
			if ok {
				// The caller must keep draining r so qemu never blocks.
				go io.Copy(io.Discard, br)
				return code, true, nil
			}
		}
		if line != "" {
			if _, err := io.WriteString(w, line); err != nil {
				return 0, false, err
			}
		}
		if rerr == io.EOF {
			return 0, false, nil
		}
		if rerr != nil {
			return 0, false, rerr
		}
	}
}

// ParseStatus parses a status line "VMTEST-STATUS-<nonce>: exit=N".
func ParseStatus(line, nonce string) (int, bool) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(line), guest.StatusPrefix(nonce))
	if !ok {
		return 0, false
	}
	v, ok := strings.CutPrefix(strings.TrimSpace(rest), "exit=")
	if !ok {
		return 0, false
	}
	code, err := strconv.Atoi(v)
	if err != nil || code < 0 || code > 255 {
		return 0, false
	}
	return code, true
}
