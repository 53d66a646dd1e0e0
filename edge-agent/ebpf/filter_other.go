//go:build !(linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64))

package ebpf

import "fmt"

// Filter is the eBPF filter. On this platform (not Linux, or a big-endian
// CPU for which no BPF object is generated) it cannot be attached.
type Filter struct{}

// Attach always fails with an error wrapping ErrUnsupported here.
func Attach(iface string, rules []Rule) (*Filter, error) {
	if err := ValidateRules(rules); err != nil {
		return nil, fmt.Errorf("ebpf: invalid rules: %w", err)
	}
	return nil, fmt.Errorf("%w: the eBPF filter needs Linux on a little-endian CPU", ErrUnsupported)
}

// SetRules fails: a Filter cannot exist on this platform.
func (f *Filter) SetRules(rules []Rule) error { return ErrUnsupported }

// Snapshot fails: a Filter cannot exist on this platform.
func (f *Filter) Snapshot() (Snapshot, error) { return Snapshot{}, ErrUnsupported }

// Close does nothing.
func (f *Filter) Close() error { return nil }
