package remote

import (
	"context"

	"github.com/runbook/runbook/engine/transport"
)

// StartOn starts the helper on conn as t says, become settings included (the tests of
// become methods that the inventory's play settings do not reach yet).
func (c *Connector) StartOn(ctx context.Context, conn *transport.Conn, t transport.Target) (*Executor, error) {
	return c.start(ctx, conn, t)
}
