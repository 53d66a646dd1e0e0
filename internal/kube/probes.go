package kube

import (
	"errors"
	"fmt"
	"net/http"

	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// AddProbes adds /healthz (the process answers) and /readyz: ready once the
// informer caches have synced — before that, reconcilers would act on an
// empty view of the cluster — and every extra check passes.
func AddProbes(mgr manager.Manager, extra ...func() error) error {
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("adding health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", func(req *http.Request) error {
		if !mgr.GetCache().WaitForCacheSync(req.Context()) {
			return errors.New("informer caches have not synced")
		}
		for _, check := range extra {
			if err := check(); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("adding ready check: %w", err)
	}
	return nil
}
