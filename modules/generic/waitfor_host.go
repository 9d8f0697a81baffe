package generic

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/hostfs"
)

var _ modules.Runner[waitForArgs] = WaitFor{}

// fatalError is a finding that waiting cannot change (an untrusted link, a directory
// where a file is searched): the task fails at once.
type fatalError struct{ err error }

func (e fatalError) Error() string { return e.err.Error() }
func (e fatalError) Unwrap() error { return e.err }

// fatal marks err as a fatalError.
func fatal(err error) error { return fatalError{err} }

// probe checks the condition once; it reports what it found, and an error that ends the
// wait (a fatalError) or that is only what was seen (a race while resolving a path).
type probe func(ctx context.Context, deadline time.Time) (found, error)

// found is one check's finding.
type found struct {
	held bool
	seen string // what was seen, for the message when time runs out
	// match is what search_regex matched and then each of its groups.
	match []string
}

// Run checks the condition until it holds or the time runs out. Check and apply are the
// same: wait_for only reads.
func (m WaitFor) Run(ctx context.Context, env *modules.Env, a waitForArgs, apply bool) (*modules.Result, error) {
	now := time.Now
	start := now()
	deadline := start.Add(seconds(a.Timeout))
	// The task's (or the host's) deadline, when nearer, ends the wait a moment before it,
	// so that this answer, not the engine's bare "timed out", says what was waited for.
	cut := false
	if dl, ok := ctx.Deadline(); ok {
		margin := min(time.Second, dl.Sub(start)/10)
		if dl.Add(-margin).Before(deadline) {
			deadline, cut = dl.Add(-margin), true
		}
	}

	what, check, err := m.probe(env, a)
	if err != nil {
		return nil, err
	}
	data := waitForResult{}
	res := &modules.Result{Status: modules.StatusOK, Data: &data}

	if a.Delay > 0 {
		if err := sleepUntil(ctx, minTime(start.Add(seconds(a.Delay)), deadline)); err != nil {
			return nil, fmt.Errorf("waiting for %s: %w", what, err)
		}
	}
	var seen string
	for {
		f, err := check(ctx, deadline)
		if errors.As(err, new(fatalError)) {
			return nil, fmt.Errorf("waiting for %s: %w", what, err)
		}
		seen = f.seen
		if err != nil {
			seen = err.Error()
		}
		elapsed := now().Sub(start)
		if f.held {
			data.Elapsed = roundSeconds(elapsed)
			res.Msg = fmt.Sprintf("waited %s for %s", fmtSeconds(elapsed), what)
			if len(f.match) > 0 {
				data.Match, data.MatchGroups = &f.match[0], f.match[1:]
			}
			return res, nil
		}
		if !now().Before(deadline) {
			break
		}
		next := minTime(now().Add(seconds(a.Sleep)), deadline)
		if err := sleepUntil(ctx, next); err != nil {
			return nil, fmt.Errorf("waiting for %s: %w (last seen: %s)", what, err, seen)
		}
	}
	elapsed := now().Sub(start)
	why := fmt.Sprintf("timed out after %s waiting for %s", fmtSeconds(elapsed), what)
	if cut {
		why = fmt.Sprintf("stopped after %s, at the task's timeout (or the host's; before wait_for's timeout of %s), waiting for %s",
			fmtSeconds(elapsed), fmtSeconds(seconds(a.Timeout)), what)
	}
	why += " (last seen: " + seen + ")"
	if a.Msg != nil {
		why = *a.Msg + ": " + why
	}
	data.Elapsed = roundSeconds(elapsed)
	return res, errors.New(env.Redactor().Redact(why))
}

// probe returns what is waited for, in words, and the check for it.
func (m WaitFor) probe(env *modules.Env, a waitForArgs) (string, probe, error) {
	open := a.State == waitStarted || a.State == waitPresent
	if a.Port != nil {
		port := int(*a.Port)
		addr := net.JoinHostPort(a.Host, strconv.Itoa(port))
		switch {
		case a.State == waitDrained:
			host, err := netip.ParseAddr(a.Host)
			if err != nil {
				return "", nil, fmt.Errorf("host: %q is not an address", a.Host)
			}
			where := "on " + a.Host
			if host.IsUnspecified() {
				where = "on any address"
			}
			dir := m.procNet
			if dir == "" {
				dir = "/proc/net"
			}
			return fmt.Sprintf("port %d %s to drain", port, where), func(ctx context.Context, _ time.Time) (found, error) {
				n, err := establishedOn(ctx, dir, host, port)
				if err != nil {
					return found{}, err
				}
				return found{held: n == 0, seen: fmt.Sprintf("%d established %s", n, plural(n, "connection", "connections"))}, nil
			}, nil
		case open:
			return fmt.Sprintf("port %d on %s to open", port, a.Host), func(ctx context.Context, deadline time.Time) (found, error) {
				if err := dial(ctx, addr, a.ConnectTimeout, deadline); err != nil {
					return found{seen: err.Error()}, nil
				}
				return found{held: true, seen: "open"}, nil
			}, nil
		default:
			return fmt.Sprintf("port %d on %s to close", port, a.Host), func(ctx context.Context, deadline time.Time) (found, error) {
				err := dial(ctx, addr, a.ConnectTimeout, deadline)
				var dnsErr *net.DNSError
				switch {
				case err == nil:
					return found{seen: "a connection was accepted"}, nil
				case errors.As(err, &dnsErr), ctx.Err() != nil:
					// Not knowing where host is says nothing about the port.
					return found{seen: err.Error()}, nil
				}
				return found{held: true, seen: err.Error()}, nil
			}, nil
		}
	}

	path := *a.Path
	if a.SearchRegex != nil {
		re, err := regexp.Compile("(?m)" + *a.SearchRegex)
		if err != nil {
			return "", nil, fmt.Errorf("search_regex: %w", err)
		}
		shown := *a.SearchRegex
		if env.Sensitive("search_regex") {
			shown = modules.Redacted
		}
		return fmt.Sprintf("%s to match %q", path, shown), func(context.Context, time.Time) (found, error) {
			return searchFile(path, re, env.Redactor())
		}, nil
	}
	if open {
		return path + " to exist", func(context.Context, time.Time) (found, error) {
			fi, err := statTrusted(path)
			if err != nil || fi == nil {
				return found{seen: "absent"}, err
			}
			return found{held: true, seen: "present (" + fileKind(fi) + ")"}, nil
		}, nil
	}
	return path + " to be absent", func(context.Context, time.Time) (found, error) {
		fi, err := statTrusted(path)
		if err != nil {
			return found{}, err
		}
		if fi == nil {
			return found{held: true, seen: "absent"}, nil
		}
		return found{seen: "present (" + fileKind(fi) + ")"}, nil
	}, nil
}

// dial connects to addr once, for at most connectTimeout seconds and never past deadline.
func dial(ctx context.Context, addr string, connectTimeout float64, deadline time.Time) error {
	limit := min(seconds(connectTimeout), time.Until(deadline))
	if limit < 10*time.Millisecond {
		limit = 10 * time.Millisecond
	}
	d := net.Dialer{Timeout: limit}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}

// statTrusted describes what path leads to, following a link only when trusted (hostfs):
// nil when nothing is there (a missing parent, a link to nothing). An untrusted link, or a
// file nobody may look at, ends the wait (a fatalError); a path that changed while it was
// resolved is only what was seen this time.
func statTrusted(path string) (fs.FileInfo, error) {
	ref, err := hostfs.Resolve(path, hostfs.FollowLast)
	if err == nil {
		defer ref.Close()
		var fi fs.FileInfo
		fi, err = ref.Lstat()
		if err == nil {
			return fi, nil
		}
	}
	return nil, pathError(err)
}

// pathError sorts an error about a path: nil for nothing there, a fatalError for what
// waiting cannot change, else the error itself.
func pathError(err error) error {
	var untrusted *hostfs.UntrustedLinkError
	var hard *hostfs.HardLinkError
	switch {
	case err == nil, errors.Is(err, fs.ErrNotExist):
		return nil
	case errors.As(err, &untrusted), errors.As(err, &hard), errors.Is(err, fs.ErrPermission):
		return fatal(err)
	}
	return err
}

// searchFile matches re against the first maxSearch bytes of the regular file at path.
// The match and its groups are what the task registers (shown).
func searchFile(path string, re *regexp.Regexp, red *modules.Redactor) (found, error) {
	absent := found{seen: "absent"}
	ref, err := hostfs.Resolve(path, hostfs.FollowLast)
	if err != nil {
		if err = pathError(err); err == nil {
			return absent, nil
		}
		return found{}, err
	}
	defer ref.Close()
	fi, err := ref.Lstat()
	switch {
	case err != nil:
		return found{}, pathError(err)
	case fi == nil:
		return absent, nil
	case !fi.Mode().IsRegular():
		return found{}, fatal(fmt.Errorf("%s is %s, not a file that search_regex can read", path, fileKind(fi)))
	}
	b, more, err := ref.ReadHead(maxSearch)
	if err != nil {
		if err = pathError(err); err == nil {
			return absent, nil
		}
		return found{}, err
	}
	if loc := re.FindSubmatchIndex(b); loc != nil {
		f := found{held: true, seen: "a match"}
		for i := 0; i+1 < len(loc); i += 2 {
			if loc[i] < 0 {
				f.match = append(f.match, "")
				continue
			}
			f.match = append(f.match, shown(red, b, loc[i], loc[i+1]))
		}
		return f, nil
	}
	seen := fmt.Sprintf("%d bytes, no match", len(b))
	if more {
		seen = fmt.Sprintf("no match in its first %d MiB, which is all that is read", maxSearch>>20)
	}
	return found{seen: seen}, nil
}

// shown is b[start:end], a match or a group, as the task registers it: redacted, valid
// UTF-8, at most maxShownMatch bytes. A secret only partly inside it would not be
// recognised there, so the text around it is redacted too: when a secret found there
// overlaps it, it is shown as redacted whole.
func shown(red *modules.Redactor, b []byte, start, end int) string {
	text := string(b[start:end])
	if m := red.Margin(); m > 0 {
		around := string(b[max(0, start-m):min(len(b), end+m)])
		if !strings.Contains(red.Redact(around), red.Redact(text)) {
			return modules.Redacted
		}
	}
	text = strings.ToValidUTF8(text, "\uFFFD")
	s, kept := red.Clip(text, maxShownMatch)
	if kept < len(text) {
		s += "…"
	}
	return s
}

// fileKind names the type of what a path is, for messages.
func fileKind(fi fs.FileInfo) string {
	switch m := fi.Mode(); {
	case m.IsRegular():
		return "a file"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeSymlink != 0:
		return "a link"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "not a file"
}

// TCP states in /proc/net/tcp.
const tcpEstablished = "01"

// maxProcLine bounds a line of /proc/net/tcp (about 150 bytes each).
const maxProcLine = 4096

// establishedOn counts the established TCP connections whose local port is port, on the
// address host (any, when host is unspecified), from /proc/net/tcp and tcp6 in dir.
func establishedOn(ctx context.Context, dir string, host netip.Addr, port int) (int, error) {
	n := 0
	for _, name := range []string{"tcp", "tcp6"} {
		f, err := os.Open(filepath.Join(dir, name))
		if name == "tcp6" && errors.Is(err, fs.ErrNotExist) {
			continue // no IPv6 in this kernel
		}
		if err != nil {
			return 0, fatal(err)
		}
		c, err := countEstablished(ctx, f, host, port)
		f.Close()
		if err != nil {
			return 0, fmt.Errorf("%s: %w", filepath.Join(dir, name), err)
		}
		n += c
	}
	return n, nil
}

// countEstablished reads one /proc/net/tcp-style table. Lines it cannot read are an
// error: counting around them could call a busy port drained.
func countEstablished(ctx context.Context, r io.Reader, host netip.Addr, port int) (int, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 512), maxProcLine)
	n, line := 0, 0
	for sc.Scan() {
		line++
		if line == 1 {
			continue // the header
		}
		if line%4096 == 0 && ctx.Err() != nil {
			return 0, ctx.Err()
		}
		f := strings.Fields(sc.Text())
		if len(f) < 4 {
			return 0, fmt.Errorf("line %d: %d fields", line, len(f))
		}
		if f[3] != tcpEstablished {
			continue
		}
		addr, p, err := procAddr(f[1])
		if err != nil {
			return 0, fmt.Errorf("line %d: %w", line, err)
		}
		if p != port {
			continue
		}
		if host.IsUnspecified() || addr.Unmap() == host.Unmap() {
			n++
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return n, nil
}

// procAddr reads "0100007F:1F90" (IPv4) or 32 hex digits and a port (IPv6): the address is
// printed as 32-bit words in the kernel's byte order, the port as a number.
func procAddr(s string) (netip.Addr, int, error) {
	a, p, ok := strings.Cut(s, ":")
	raw, err := hex.DecodeString(a)
	if !ok || err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.Addr{}, 0, fmt.Errorf("bad address %q", s)
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("bad port in %q", s)
	}
	b := make([]byte, len(raw))
	for i := 0; i < len(raw); i += 4 {
		binary.NativeEndian.PutUint32(b[i:], binary.BigEndian.Uint32(raw[i:]))
	}
	addr, _ := netip.AddrFromSlice(b)
	return addr, int(port), nil
}

// sleepUntil waits until t or until ctx ends.
func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// roundSeconds is d in seconds, to the millisecond.
func roundSeconds(d time.Duration) float64 { return float64(d.Milliseconds()) / 1000 }

// fmtSeconds renders d for messages, to a tenth of a second: "2.3s", "300s".
func fmtSeconds(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Round(100*time.Millisecond))/float64(time.Second), 'f', -1, 64) + "s"
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
