// Command vminit is the PID-1 init of vmtest VMs. Build it static
// (CGO_ENABLED=0); vmrun does so on demand.
package main

import "github.com/bpfkit/bpfkit/vmtest/guest"

func main() { guest.Main() }
