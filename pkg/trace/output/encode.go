package output

import (
	"strconv"
	"time"
	"unicode/utf8"
)

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string. s may hold any bytes: invalid
// UTF-8 becomes U+FFFD and control characters are escaped, so the line
// always stays valid JSON.
func AppendJSONString(dst []byte, s []byte) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c < 0x20 || c == 0x7f:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
		} else if r == '\u2028' || r == '\u2029' {
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}

// AppendPrintable appends s for a terminal: printable UTF-8 as it is, other
// bytes as Go escapes (\n, \t, \x1b, \xff), so one event stays one line.
func AppendPrintable(dst []byte, s []byte) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7f && c != '\\' {
			dst = append(dst, c)
			i++
			continue
		}
		if c < utf8.RuneSelf {
			switch c {
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\\':
				dst = append(dst, '\\', '\\')
			default:
				dst = append(dst, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 || !strconv.IsPrint(r) {
			for _, b := range s[i : i+size] {
				dst = append(dst, '\\', 'x', hexDigits[b>>4], hexDigits[b&0xf])
			}
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return dst
}

// RFC3339Nano is the JSON time layout: RFC 3339 with all nine digits.
const RFC3339Nano = "2006-01-02T15:04:05.000000000Z07:00"

// AppendJSONTime appends t as a quoted RFC 3339 time with nanoseconds.
func AppendJSONTime(dst []byte, t time.Time) []byte {
	dst = append(dst, '"')
	dst = t.AppendFormat(dst, RFC3339Nano)
	return append(dst, '"')
}

// AppendBool appends a JSON boolean.
func AppendBool(dst []byte, b bool) []byte { return strconv.AppendBool(dst, b) }

// AppendInt appends a decimal integer.
func AppendInt[I ~int | ~int8 | ~int16 | ~int32 | ~int64](dst []byte, i I) []byte {
	return strconv.AppendInt(dst, int64(i), 10)
}

// AppendUint appends a decimal unsigned integer.
func AppendUint[I ~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64](dst []byte, i I) []byte {
	return strconv.AppendUint(dst, uint64(i), 10)
}
