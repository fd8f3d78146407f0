// Package loader is the part of every bpfkit tool that is not about its
// domain: it checks privileges and kernel features, mounts bpffs and tracefs
// when missing, configures a CollectionSpec (const volatile knobs, ring size,
// programs whose hook this kernel lacks), loads and attaches it, turns kernel
// errors into one-line advice, streams the ring buffer with batched wake-ups
// and a lost-event counter, and closes everything in order.
//
// It holds no generated code: tools pass in the spec bpf2go made for them.
package loader
