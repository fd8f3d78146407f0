// Package output prints events as an aligned table or as JSON lines, both
// driven by one description of the fields, without allocating per event.
package output

import (
	"bufio"
	"fmt"
	"io"

	"github.com/bpfkit/bpfkit/internal/flagval"
)

// Format is how events are printed.
type Format int

const (
	Table Format = iota // aligned columns under a header
	JSON                // one JSON object per line (NDJSON)
)

// ParseFormat accepts "table" or "json".
func ParseFormat(s string) (Format, error) {
	switch s {
	case "table", "":
		return Table, nil
	case "json":
		return JSON, nil
	}
	return 0, fmt.Errorf("output format %s: use table or json", flagval.Quote(s))
}

func (f Format) String() string {
	if f == JSON {
		return "json"
	}
	return "table"
}

// Field describes one field of an event, once, for every format.
type Field[E any] struct {
	// Header is the table column's title; empty leaves the field out of
	// the table.
	Header string
	// Key is the JSON key; empty leaves the field out of JSON.
	Key string
	// Width is the table column's width: positive right-aligns, negative
	// left-aligns, zero is unpadded (for the last column).
	Width int
	// Text appends the table cell.
	Text func(dst []byte, e *E) []byte
	// JSON appends the JSON value; nil quotes what Text gives.
	JSON func(dst []byte, e *E) []byte
	// Omit, when set and true, leaves the field out of this event's JSON
	// (for keys that only appear when they say something, like truncated).
	Omit func(e *E) bool
}

// Printer writes events to a buffered writer; call Flush to push them out.
type Printer[E any] struct {
	w      *bufio.Writer
	format Format
	table  []Field[E]
	json   []Field[E]
	keys   [][]byte // `"key":` for each JSON field
	line   []byte
	cell   []byte
}

// NewPrinter returns a printer of fields in format to w.
func NewPrinter[E any](w io.Writer, format Format, fields []Field[E]) *Printer[E] {
	p := &Printer[E]{w: bufio.NewWriterSize(w, 64<<10), format: format}
	for _, f := range fields {
		if f.Header != "" {
			p.table = append(p.table, f)
		}
		if f.Key != "" {
			p.json = append(p.json, f)
			key := AppendJSONString(nil, []byte(f.Key))
			p.keys = append(p.keys, append(key, ':'))
		}
	}
	return p
}

// Header writes the table's header line; JSON has none.
func (p *Printer[E]) Header() error {
	if p.format != Table {
		return nil
	}
	p.line = p.line[:0]
	for i, f := range p.table {
		if i > 0 {
			p.line = append(p.line, ' ')
		}
		p.line = pad(p.line, []byte(f.Header), f.Width, i == len(p.table)-1)
	}
	p.line = append(p.line, '\n')
	_, err := p.w.Write(p.line)
	return err
}

// Print writes one event.
func (p *Printer[E]) Print(e *E) error {
	p.line = p.line[:0]
	if p.format == JSON {
		p.line = append(p.line, '{')
		first := true
		for i, f := range p.json {
			if f.Omit != nil && f.Omit(e) {
				continue
			}
			if !first {
				p.line = append(p.line, ',')
			}
			first = false
			p.line = append(p.line, p.keys[i]...)
			if f.JSON != nil {
				p.line = f.JSON(p.line, e)
			} else {
				p.cell = f.Text(p.cell[:0], e)
				p.line = AppendJSONString(p.line, p.cell)
			}
		}
		p.line = append(p.line, '}', '\n')
	} else {
		for i, f := range p.table {
			if i > 0 {
				p.line = append(p.line, ' ')
			}
			p.cell = f.Text(p.cell[:0], e)
			p.line = pad(p.line, p.cell, f.Width, i == len(p.table)-1)
		}
		p.line = append(p.line, '\n')
	}
	_, err := p.w.Write(p.line)
	return err
}

// Flush writes out what is buffered.
func (p *Printer[E]) Flush() error { return p.w.Flush() }

// pad appends cell aligned in a column of width; the last column is not
// padded on the right.
func pad(dst, cell []byte, width int, last bool) []byte {
	n := width
	if n < 0 {
		n = -n
	}
	fill := n - len(cell)
	if width > 0 {
		for ; fill > 0; fill-- {
			dst = append(dst, ' ')
		}
		return append(dst, cell...)
	}
	dst = append(dst, cell...)
	if !last {
		for ; fill > 0; fill-- {
			dst = append(dst, ' ')
		}
	}
	return dst
}
