package testkit

import (
	"encoding/binary"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// EthtoolStats reads an interface's driver statistics, what `ethtool -S`
// shows, with the SIOCETHTOOL ioctl (ETHTOOL_GSSET_INFO, GSTRINGS, GSTATS)
// in the calling thread's network namespace.
func EthtoolStats(iface string) (map[string]uint64, error) {
	const (
		ethSSStats    = 1  // ETH_SS_STATS
		ethGStringLen = 32 // ETH_GSTRING_LEN
	)
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	// struct ifreq with ifr_data: the pointer field keeps data alive.
	type ifreqData struct {
		name [unix.IFNAMSIZ]byte
		data unsafe.Pointer
		_    [24 - unsafe.Sizeof(uintptr(0))]byte
	}
	ioctl := func(data []byte) error {
		ifr := ifreqData{data: unsafe.Pointer(&data[0])}
		copy(ifr.name[:], iface)
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr))); errno != 0 {
			return fmt.Errorf("SIOCETHTOOL %s: %w", iface, errno)
		}
		return nil
	}
	ne := binary.NativeEndian
	info := make([]byte, 8+8+4) // struct ethtool_sset_info + one count
	ne.PutUint32(info, unix.ETHTOOL_GSSET_INFO)
	ne.PutUint64(info[8:], 1<<ethSSStats)
	if err := ioctl(info); err != nil {
		return nil, err
	}
	if ne.Uint64(info[8:]) == 0 {
		return nil, fmt.Errorf("%s has no driver statistics", iface)
	}
	n := int(ne.Uint32(info[16:]))
	names := make([]byte, 12+n*ethGStringLen) // struct ethtool_gstrings
	ne.PutUint32(names, unix.ETHTOOL_GSTRINGS)
	ne.PutUint32(names[4:], ethSSStats)
	ne.PutUint32(names[8:], uint32(n))
	if err := ioctl(names); err != nil {
		return nil, err
	}
	values := make([]byte, 8+8*n) // struct ethtool_stats
	ne.PutUint32(values, unix.ETHTOOL_GSTATS)
	ne.PutUint32(values[4:], uint32(n))
	if err := ioctl(values); err != nil {
		return nil, err
	}
	n = min(n, int(ne.Uint32(names[8:])), int(ne.Uint32(values[4:])))
	stats := make(map[string]uint64, n)
	for i := range n {
		name := names[12+i*ethGStringLen:][:ethGStringLen]
		stats[unix.ByteSliceToString(name)] = ne.Uint64(values[8+8*i:])
	}
	return stats, nil
}
