//go:build !linux

package hostfs

func (*Ref) ReadHead(int64) ([]byte, bool, error) { return nil, false, errNotLinux }
