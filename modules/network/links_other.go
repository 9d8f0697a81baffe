//go:build !linux

package network

import "errors"

// The network modules run on Linux hosts; elsewhere only their schemas are used.
func openNetlink() (linkOps, func(), error) {
	return nil, nil, errors.New("the network modules run on Linux only")
}
