package output

import (
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string. s may hold any bytes: each
// byte that does not start valid UTF-8 becomes one U+FFFD (as string([]rune(s))
// does) and control characters are escaped, so the line always stays valid
// JSON.
func AppendJSONString(dst []byte, s []byte) []byte {
	dst = append(dst, '"')
	start := 0 // s[start:i] is plain and not yet appended
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != 0x7f {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\r':
				dst = append(dst, '\\', 'r')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
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

// second caches what formatting a time shares with the rest of its second,
// since events come thousands to a second and full formatting is costly.
type second struct {
	unix  int64
	loc   *time.Location
	date  []byte // "2006-01-02T"
	clock []byte // "15:04:05"
	zone  []byte // "Z07:00"
}

var lastSecond atomic.Pointer[second]

func secondOf(t time.Time) *second {
	if c := lastSecond.Load(); c != nil && c.unix == t.Unix() && c.loc == t.Location() {
		return c
	}
	c := &second{
		unix:  t.Unix(),
		loc:   t.Location(),
		date:  t.AppendFormat(nil, "2006-01-02T"),
		clock: t.AppendFormat(nil, "15:04:05"),
		zone:  t.AppendFormat(nil, "Z07:00"),
	}
	lastSecond.Store(c)
	return c
}

// appendFraction appends "." and the first digits of t's nanoseconds.
func appendFraction(dst []byte, t time.Time, digits int) []byte {
	var buf [10]byte
	buf[0] = '.'
	ns := t.Nanosecond()
	for i := 9; i > 0; i-- {
		buf[i] = byte('0' + ns%10)
		ns /= 10
	}
	return append(dst, buf[:1+digits]...)
}

// AppendJSONTime appends t as a quoted RFC 3339 time with nanoseconds,
// like t.Format(RFC3339Nano) but several times faster.
func AppendJSONTime(dst []byte, t time.Time) []byte {
	c := secondOf(t)
	dst = append(dst, '"')
	dst = append(dst, c.date...)
	dst = append(dst, c.clock...)
	dst = appendFraction(dst, t, 9)
	dst = append(dst, c.zone...)
	return append(dst, '"')
}

// AppendClock appends t's time of day with microseconds, "15:04:05.000000".
func AppendClock(dst []byte, t time.Time) []byte {
	dst = append(dst, secondOf(t).clock...)
	return appendFraction(dst, t, 6)
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
