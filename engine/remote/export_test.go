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

// ProbeOn runs the separate probe (the start's fallback when its own script found nothing
// to say) on conn under b.
func (c *Connector) ProbeOn(ctx context.Context, conn *transport.Conn, b transport.Become) (arch string, uid int, home string, err error) {
	pr, err := c.probe(ctx, conn, b)
	return pr.arch, pr.uid, pr.home, err
}

// Close ends the helper and then its connection, as a Connection does for each of its
// helpers (the tests that start one with StartOn).
func (x *Executor) Close() error {
	x.close()
	return x.conn.Close()
}
