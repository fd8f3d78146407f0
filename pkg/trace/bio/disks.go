package bio

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/bpfkit/bpfkit/internal/flagval"
)

// Disk is a block device as /proc/partitions lists it.
type Disk struct {
	Name  string
	Dev   uint32 // kernel dev_t: major << 20 | minor
	Whole bool   // a disk, not a partition
}

// KernelDev is the kernel's dev_t of major:minor (MKDEV).
func KernelDev(major, minor uint32) uint32 { return major<<20 | minor }

// Disks names kernel device numbers, from /proc/partitions, read again
// (at most once a second) when a number is not known yet.
type Disks struct {
	path  string
	mu    sync.Mutex
	names map[uint32]string
	read  time.Time
}

// NewDisks reads /proc/partitions when first needed.
func NewDisks() *Disks { return &Disks{path: "/proc/partitions", names: map[uint32]string{}} }

func (d *Disks) reload() error {
	b, err := os.ReadFile(d.path)
	if err != nil {
		return fmt.Errorf("read disk names: %w", err)
	}
	d.read = time.Now()
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) != 4 {
			continue
		}
		major, err1 := strconv.ParseUint(string(f[0]), 10, 32)
		minor, err2 := strconv.ParseUint(string(f[1]), 10, 32)
		if err1 != nil || err2 != nil {
			continue // the header
		}
		d.names[KernelDev(uint32(major), uint32(minor))] = string(f[3])
	}
	return nil
}

// Name returns the device's name, or MAJOR:MINOR when /proc/partitions
// does not list it (a device already removed).
func (d *Disks) Name(dev uint32) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if n, ok := d.names[dev]; ok {
		return n
	}
	if time.Since(d.read) > time.Second {
		_ = d.reload()
		if n, ok := d.names[dev]; ok {
			return n
		}
	}
	return fmt.Sprintf("%d:%d", dev>>20, dev&(1<<20-1))
}

// Lookup finds a disk or partition by name.
func (d *Disks) Lookup(name string) (Disk, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.reload(); err != nil {
		return Disk{}, err
	}
	for dev, n := range d.names {
		if n == name {
			_, err := os.Stat("/sys/class/block/" + name + "/partition")
			return Disk{Name: n, Dev: dev, Whole: errors.Is(err, os.ErrNotExist)}, nil
		}
	}
	return Disk{}, fmt.Errorf("disk %s is not in %s: give a disk or partition name as lsblk shows it (such as %s)", flagval.Quote(name), d.path, d.example())
}

// example is a name to suggest: the first listed.
func (d *Disks) example() string {
	best := ""
	for _, n := range d.names {
		if best == "" || n < best {
			best = n
		}
	}
	if best == "" {
		return "sda"
	}
	return best
}
