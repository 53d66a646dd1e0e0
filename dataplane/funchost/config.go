package funchost

import (
	"errors"
	"fmt"
	"time"
)

// Isolation is how instances are shared between requests.
type Isolation int

const (
	// Pooled reuses instances: fast, and guest state persists between
	// requests of the same Function.
	Pooled Isolation = iota
	// PerRequest runs every request on a fresh instance.
	PerRequest
)

// Config sandboxes one Function. Zero limits, timeout and MaxInstances take
// the defaults of the Function API (api/serverless/v1alpha1).
type Config struct {
	// MemoryLimitPages caps each instance's linear memory, in 64 KiB pages.
	MemoryLimitPages uint32
	// Timeout bounds one invocation, including waiting for a free instance.
	Timeout time.Duration
	// MaxRequestBytes is the largest request body accepted.
	MaxRequestBytes int64
	// MaxResponseBytes is the largest response (body and headers) accepted.
	MaxResponseBytes int64
	// MinInstances are kept instantiated; Load creates at least one, in
	// PerRequest isolation too, to check the module links.
	MinInstances int
	// MaxInstances alive at once; more requests wait for one to be free.
	MaxInstances int
	// Env is the guest's whole environment.
	Env map[string]string
	// Isolation selects pooled or per-request instances.
	Isolation Isolation
	// ABI is how the guest serves requests: Reactor (the default) or
	// Command, which requires PerRequest isolation.
	ABI ABI
}

// Defaults, matching the Function API.
const (
	DefaultMemoryLimitPages = 256
	DefaultTimeout          = 5 * time.Second
	DefaultMaxBodyBytes     = 1 << 20
	DefaultMaxInstances     = 16
	maxMemoryPages          = 65536
)

// withDefaults fills zero fields and rejects inconsistent ones.
func (c Config) withDefaults() (Config, error) {
	if c.MemoryLimitPages == 0 {
		c.MemoryLimitPages = DefaultMemoryLimitPages
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = DefaultMaxBodyBytes
	}
	if c.MaxResponseBytes == 0 {
		c.MaxResponseBytes = DefaultMaxBodyBytes
	}
	if c.MaxInstances == 0 {
		c.MaxInstances = DefaultMaxInstances
	}
	var errs []error
	if c.MemoryLimitPages > maxMemoryPages {
		errs = append(errs, fmt.Errorf("memory limit %d pages exceeds %d", c.MemoryLimitPages, maxMemoryPages))
	}
	if c.Timeout < 0 || c.MaxRequestBytes < 0 || c.MaxResponseBytes < 0 || c.MinInstances < 0 || c.MaxInstances < 0 {
		errs = append(errs, errors.New("timeout, body limits and instance counts must not be negative"))
	}
	if c.MinInstances > c.MaxInstances {
		errs = append(errs, fmt.Errorf("min instances %d exceed max instances %d", c.MinInstances, c.MaxInstances))
	}
	if c.Isolation != Pooled && c.Isolation != PerRequest {
		errs = append(errs, fmt.Errorf("unknown isolation %d", c.Isolation))
	}
	switch {
	case c.ABI != Reactor && c.ABI != Command:
		errs = append(errs, fmt.Errorf("unknown ABI %d", c.ABI))
	case c.ABI == Command && c.Isolation != PerRequest:
		errs = append(errs, errors.New("the Command ABI requires PerRequest isolation: a command's instance runs once"))
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, fmt.Errorf("invalid config: %w", err)
	}
	return c, nil
}
