//go:build !linux

package network

import "errors"

func nlBridgeSTP(int) (bool, error) { return false, errors.New("bridges are Linux only") }

func nlSetBridgeSTP(int, bool) error { return errors.New("bridges are Linux only") }
