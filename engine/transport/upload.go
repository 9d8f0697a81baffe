package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/pkg/sftp"
)

// sftpPacket is the SFTP write size: OpenSSH's sftp-server accepts up to
// 256 KiB messages, and bigger writes mean fewer round trips on one stream.
const sftpPacket = 255 * 1024

func (c *Conn) sftpClient(ctx context.Context) (*sftp.Client, error) {
	c.mu.Lock()
	closed, cur := c.closed, c.sftp
	c.mu.Unlock()
	if closed {
		return nil, unreachable(c.Target.Name, "connection", errors.New("connection closed"))
	}
	if cur != nil {
		return cur, nil
	}
	type result struct {
		s   *sftp.Client
		err error
	}
	ch := make(chan result, 1)
	go func() {
		s, err := sftp.NewClient(c.client, sftp.MaxPacketUnchecked(sftpPacket))
		ch <- result{s, err}
	}()
	var r result
	select {
	case r = <-ch:
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.s != nil {
				r.s.Close()
			}
		}()
		return nil, ctx.Err()
	}
	if r.err != nil {
		return nil, c.connErr(fmt.Errorf("start sftp on %s: %w", c.Target.Name, r.err))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sftp != nil { // another Upload won the race
		r.s.Close()
		return c.sftp, nil
	}
	if c.closed {
		r.s.Close()
		return nil, unreachable(c.Target.Name, "connection", errors.New("connection closed"))
	}
	c.sftp = r.s
	return r.s, nil
}

// Upload writes r to remoteTmpPath, which must not exist yet, with mode, over
// the connection's SFTP session (opened once, kept). Writes go one at a time
// (a single stream). The caller verifies and renames the file. On ctx's end
// the SFTP session is closed (the next Upload opens a new one).
func (c *Conn) Upload(ctx context.Context, r io.Reader, remoteTmpPath string, mode os.FileMode) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s, err := c.sftpClient(ctx)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { c.dropSFTP(s) })
	defer stop()
	wrap := func(op string, err error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return c.connErr(fmt.Errorf("upload to %s:%s: %s: %w", c.Target.Name, remoteTmpPath, op, err))
	}
	// Created exclusively: a file or a link already at the name (planted by someone else)
	// is an error, never written through.
	f, err := s.OpenFile(remoteTmpPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return wrap("create", err)
	}
	if err := f.Chmod(mode.Perm()); err != nil {
		f.Close()
		return wrap("chmod", err)
	}
	if _, err := f.ReadFrom(r); err != nil {
		f.Close()
		return wrap("write", err)
	}
	if err := f.Close(); err != nil {
		return wrap("close", err)
	}
	return nil
}

func (c *Conn) dropSFTP(s *sftp.Client) {
	c.mu.Lock()
	if c.sftp == s {
		c.sftp = nil
	}
	c.mu.Unlock()
	s.Close()
}
