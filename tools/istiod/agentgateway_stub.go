// tools/istiod/agentgateway_stub.go: tools/install-istiod.sh deletes every .go
// file of istio.io/istio's pilot/pkg/config/kube/agentgateway and copies this
// one in their place.
//
// Why: that package imports github.com/agentgateway/agentgateway/api, which the
// Go module proxy refuses to serve (403, its version list too), so istiod does
// not build from the module proxy as it is. Its controller runs only with
// PILOT_ENABLE_AGENTGATEWAY=true (default false) and needs Kubernetes anyway;
// istiod on this machine runs with neither. This stub keeps exactly what
// pilot/pkg/bootstrap uses, so the rest of istiod compiles unchanged, and
// panics with a clear message if anything ever turns the feature on.

// Package agentgateway is flatline's stand-in for Istio's agentgateway controller.
package agentgateway

import (
	"k8s.io/apimachinery/pkg/runtime/schema"

	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/pkg/serviceregistry/kube/controller"
	"istio.io/istio/pilot/pkg/status"
	"istio.io/istio/pilot/pkg/xds"
	"istio.io/istio/pkg/kube"
)

// Controller has the fields and methods pilot/pkg/bootstrap uses; it satisfies
// model.AgentgatewayController through the embedded ConfigStoreController.
type Controller struct {
	model.ConfigStoreController
	Registrations []xds.Registration
}

var _ model.AgentgatewayController = &Controller{}

// NewAgwController is never called unless PILOT_ENABLE_AGENTGATEWAY=true.
func NewAgwController(
	_ kube.Client,
	_ func(schema.GroupVersionResource, <-chan struct{}) bool,
	_ controller.Options,
) *Controller {
	panic("agentgateway is not built into this istiod (flatline's tools/install-istiod.sh stubs it out: " +
		"github.com/agentgateway/agentgateway/api is not available from the Go module proxy); " +
		"unset PILOT_ENABLE_AGENTGATEWAY")
}

// SetStatusWrite does nothing: there is no agentgateway status to write.
func (c *Controller) SetStatusWrite(bool, *status.Manager) {}

// Reconcile does nothing: there is no agentgateway state to reconcile.
func (c *Controller) Reconcile(*model.PushContext) {}
