//go:build linux

package hostfs

import (
	"fmt"
	"io"
)

// ReadHead reads at most n bytes from the start of the regular file at the name, as
// ReadFile opens it (never through a link, a file with several names refused as
// checkNames says), for a reader that looks into files of any size, such as a log that
// wait_for searches. more says the file went on past n.
func (r *Ref) ReadHead(n int64) (b []byte, more bool, err error) {
	f, _, err := r.openRegular()
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	// One byte past n says whether there is more, whatever the size claims (/proc).
	b, err = io.ReadAll(io.LimitReader(f, n+1))
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", r.Path(), err)
	}
	if int64(len(b)) > n {
		return b[:n], true, nil
	}
	return b, false, nil
}
