package protocol

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/txn"
)

// Registry is where the server finds modules.
type Registry interface {
	Lookup(name string) (*modules.Def, bool)
	Names() []string
}

type globalRegistry struct{}

func (globalRegistry) Lookup(name string) (*modules.Def, bool) { return modules.Lookup(name) }
func (globalRegistry) Names() []string                         { return modules.Names() }

// Modules is the registry of every module linked into the binary.
var Modules Registry = globalRegistry{}

// DefaultTimeout bounds a request that names no timeout, so that a stuck module cannot
// hold the helper forever.
const DefaultTimeout = time.Hour

// Server serves the protocol. The zero value plus a Registry is ready to use.
type Server struct {
	Registry Registry
	// Build identifies the binary in the hello; "" means Self().
	Build string
	// Verified is sent in the hello (Hello.Verified).
	Verified string
	// MaxInFlight bounds concurrent requests; 0 means 16. Requests beyond it fail at once
	// rather than queue, so the reader keeps reading (and can see cancels).
	MaxInFlight int
	// OutputLimit is passed to modules (modules.Env.OutputLimit).
	OutputLimit int
	// StateDir is passed to modules (modules.Env.StateDir).
	StateDir string
	// TxnDir is where transactions are kept (modules.Env.TxnDir, modules/txn); "" when
	// the helper has none.
	TxnDir string
	// Recovered is sent in the hello (Hello.Recovered).
	Recovered []modules.Transaction
	Logger    *slog.Logger
	// DrainTimeout bounds the wait for cancelled requests when the input ends; 0 means 10s.
	DrainTimeout time.Duration
}

// Serve serves the protocol on r and w with the modules of reg until r ends (the controller
// went away: not an error) or ctx is cancelled.
func Serve(ctx context.Context, r io.Reader, w io.Writer, reg Registry) error {
	return (&Server{Registry: reg}).Serve(ctx, r, w)
}

// Self identifies the running binary: the sha256 of its executable, which is also the name
// of its content-addressed path on hosts. When the executable cannot be read it falls back
// to the module build info.
func Self() string {
	selfOnce.Do(func() {
		if p, err := os.Executable(); err == nil {
			if f, err := os.Open(p); err == nil {
				h := sha256.New()
				_, err := io.Copy(h, f)
				f.Close()
				if err == nil {
					selfBuild = hex.EncodeToString(h.Sum(nil))
					return
				}
			}
		}
		selfBuild = "unknown"
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" {
					selfBuild = "vcs:" + s.Value
				}
			}
		}
	})
	return selfBuild
}

var (
	selfOnce  sync.Once
	selfBuild string
)

type server struct {
	*Server
	ctx    context.Context
	cancel context.CancelCauseFunc

	wmu  sync.Mutex
	w    io.Writer
	werr error

	mu       sync.Mutex
	inFlight map[uint64]context.CancelFunc
	wg       sync.WaitGroup
	// chains are the pipelines by name (Request.Chain), chainOrder their names, oldest
	// first.
	chains     map[string]*chain
	chainOrder []string
}

// maxChains bounds how many pipelines the helper remembers.
const maxChains = 64

// forgetChains forgets the oldest chains with nothing pending while there are more than
// maxChains; srv.mu is held.
func (srv *server) forgetChains() {
	for i := 0; len(srv.chainOrder) > maxChains && i < len(srv.chainOrder); {
		name := srv.chainOrder[i]
		if c := srv.chains[name]; c != nil && c.pending > 0 {
			i++
			continue
		}
		delete(srv.chains, name)
		srv.chainOrder = append(srv.chainOrder[:i], srv.chainOrder[i+1:]...)
	}
}

// chain is one pipeline of requests: last is closed when its newest request has answered,
// failed is set once one failed (and was not tolerated), pending counts its requests not
// yet answered. A chain is kept while more of its requests may come (the controller's
// next line may arrive after the last one answered): the oldest of those with nothing
// pending are forgotten past maxChains.
type chain struct {
	last    chan struct{}
	failed  bool
	pending int
}

// errControllerGone is why running requests stop when the input ends.
var errControllerGone = errors.New("the controller closed the connection")

type readResult struct {
	line []byte
	err  error
}

// Serve is the method form of the package's Serve.
func (s *Server) Serve(ctx context.Context, r io.Reader, w io.Writer) error {
	if s.Registry == nil {
		return errors.New("protocol: Serve with no registry")
	}
	ctx, cancelCause := context.WithCancelCause(ctx)
	defer cancelCause(nil)
	srv := &server{Server: s, ctx: ctx, cancel: cancelCause, w: w, inFlight: map[uint64]context.CancelFunc{},
		chains: map[string]*chain{}}

	build := s.Build
	if build == "" {
		build = Self()
	}
	// The hello lists the modules this helper can run; controller-only ones (assert) are
	// not its business.
	var names []string
	for _, n := range s.Registry.Names() {
		if d, ok := s.Registry.Lookup(n); ok && d.RunsOnHost() {
			names = append(names, n)
		}
	}
	hello := Hello{Type: "hello", Protocol: Version, Build: build, Modules: names,
		OS: runtime.GOOS, Arch: runtime.GOARCH, UID: os.Geteuid(), Verified: srv.Verified, Recovered: srv.Recovered,
		BootID: modules.BootID()}
	b, err := json.Marshal(hello)
	if err != nil {
		return fmt.Errorf("encode hello: %w", err)
	}
	if err := srv.write(append(b, '\n')); err != nil {
		return err
	}

	// The reader runs on its own so that a cancelled ctx (a signal) ends Serve even while
	// the read blocks; the goroutine dies with the process or when r is closed.
	lines := make(chan readResult)
	go func() {
		lr := newLineReader(r, MaxLine)
		for {
			line, err := lr.next()
			select {
			case lines <- readResult{line, err}:
			case <-ctx.Done():
				return
			}
			if err != nil && err != ErrLineTooLong {
				return
			}
		}
	}()

	var result error
loop:
	for {
		select {
		case <-ctx.Done():
			result = context.Cause(ctx)
			break loop
		case rr := <-lines:
			switch {
			case rr.err == ErrLineTooLong:
				srv.respond(&Response{Status: StatusFailed, Error: &modules.Failure{Msg: "request too long: " + rr.err.Error()}})
			case rr.err == io.EOF:
				break loop
			case rr.err != nil:
				result = fmt.Errorf("read requests: %w", rr.err)
				break loop
			default:
				srv.dispatch(rr.line)
			}
		}
	}
	// The controller is gone or we were told to stop: nobody will read what the running
	// requests produce, so stop them and wait (boundedly) for them to clean up.
	if result == nil {
		srv.cancel(errControllerGone)
	}
	srv.mu.Lock()
	for _, c := range srv.inFlight {
		c()
	}
	srv.mu.Unlock()
	drained := make(chan struct{})
	go func() { srv.wg.Wait(); close(drained) }()
	drain := s.DrainTimeout
	if drain == 0 {
		drain = 10 * time.Second
	}
	select {
	case <-drained:
	case <-time.After(drain):
		s.log().Warn("requests still running after the input ended", "wait", drain)
	}
	srv.wmu.Lock()
	if srv.werr != nil {
		// A failed write cancelled ctx; the write error is the real story.
		result = srv.werr
	}
	srv.wmu.Unlock()
	return result
}

func (s *Server) log() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return s.Logger
}

func (srv *server) write(line []byte) error {
	srv.wmu.Lock()
	defer srv.wmu.Unlock()
	if srv.werr != nil {
		return srv.werr
	}
	if _, err := srv.w.Write(line); err != nil {
		// The controller cannot hear us any more; stop serving.
		srv.werr = fmt.Errorf("write response: %w", err)
		srv.cancel(srv.werr)
		return srv.werr
	}
	return nil
}

func (srv *server) respond(resp *Response) {
	b, err := EncodeResponse(resp)
	if err != nil {
		// Data a module produced did not encode; say so instead of going silent.
		b, _ = EncodeResponse(&Response{ID: resp.ID, Status: StatusFailed, DurationMS: resp.DurationMS,
			Error: &modules.Failure{Msg: err.Error()}})
	}
	if len(b) > MaxLine {
		b, _ = EncodeResponse(&Response{ID: resp.ID, Status: StatusFailed, DurationMS: resp.DurationMS,
			Error: &modules.Failure{Msg: fmt.Sprintf("response of %d bytes is over the %d-byte line limit", len(b), MaxLine)}})
	}
	_ = srv.write(b)
}

func (srv *server) dispatch(line []byte) {
	if len(bytes.TrimSpace(line)) == 0 {
		return
	}
	req, err := DecodeRequest(line)
	if err != nil {
		// Answer with the id when the line has one, so the caller is not left waiting.
		var probe struct {
			ID uint64 `json:"id"`
		}
		_ = json.Unmarshal(line, &probe)
		srv.respond(&Response{ID: probe.ID, Status: StatusFailed, Error: &modules.Failure{Msg: err.Error()}})
		return
	}
	if req.Op == OpCancel {
		srv.mu.Lock()
		if c, ok := srv.inFlight[req.ID]; ok {
			c()
		}
		srv.mu.Unlock()
		return
	}
	timeout := DefaultTimeout
	if req.TimeoutMS > 0 {
		timeout = time.Duration(req.TimeoutMS) * time.Millisecond
	}
	max := srv.MaxInFlight
	if max <= 0 {
		max = 16
	}
	srv.mu.Lock()
	if _, dup := srv.inFlight[req.ID]; dup {
		srv.mu.Unlock()
		srv.respond(&Response{ID: req.ID, Status: StatusFailed, Error: &modules.Failure{Msg: fmt.Sprintf("request id %d is already in flight", req.ID)}})
		return
	}
	if len(srv.inFlight) >= max {
		srv.mu.Unlock()
		srv.respond(&Response{ID: req.ID, Status: StatusFailed, Error: &modules.Failure{Msg: fmt.Sprintf("too many requests in flight (limit %d)", max)}})
		return
	}
	// A chained request waits for the one before it in its chain, and its timeout starts
	// when it does; a cancel reaches it while it waits too.
	base, cancelBase := context.WithCancel(srv.ctx)
	srv.inFlight[req.ID] = cancelBase
	var prev, done chan struct{}
	var ch *chain
	if req.Chain != "" {
		ch = srv.chains[req.Chain]
		if ch == nil {
			ch = &chain{}
			srv.chains[req.Chain] = ch
			srv.chainOrder = append(srv.chainOrder, req.Chain)
			srv.forgetChains()
		}
		prev, done = ch.last, make(chan struct{})
		ch.last = done
		ch.pending++
	}
	srv.wg.Add(1)
	srv.mu.Unlock()

	go func() {
		defer srv.wg.Done()
		defer cancelBase()
		var resp *Response
		start := time.Now()
		if prev != nil {
			select {
			case <-prev:
			case <-base.Done():
			}
		}
		srv.mu.Lock()
		skip := ch != nil && ch.failed
		srv.mu.Unlock()
		switch {
		case skip:
			resp = &Response{Status: StatusFailed, NotRun: true, Error: &modules.Failure{Msg: ErrNotRun}}
		case prev != nil && base.Err() != nil:
			// cancelled, or the controller went, while it waited for its chain
			resp = failed(context.Cause(base))
		default:
			start = time.Now()
			ctx, cancel := context.WithTimeout(base, timeout)
			resp = srv.handle(ctx, req, timeout)
			cancel()
		}
		srv.mu.Lock()
		delete(srv.inFlight, req.ID)
		if ch != nil {
			if resp.Status == StatusFailed && !req.Tolerated && !resp.NotRun {
				ch.failed = true
			}
			ch.pending--
		}
		srv.mu.Unlock()
		resp.ID = req.ID
		resp.DurationMS = time.Since(start).Milliseconds()
		srv.respond(resp)
		if done != nil {
			close(done)
		}
	}()
}

// handle runs one request. A panicking module is a bug, but one bug must not take down the
// helper and every task after it: the panic becomes this request's error.
func (srv *server) handle(ctx context.Context, req *Request, timeout time.Duration) (resp *Response) {
	defer func() {
		if p := recover(); p != nil {
			// The panic may quote an argument: it is redacted like any other error.
			red := modules.NewRedactor(srv.requestSecrets(req))
			resp = &Response{Status: StatusFailed, Error: &modules.Failure{
				Msg:    red.Redact(fmt.Sprintf("module %s panicked: %v", req.Module, p)),
				Stderr: red.Redact(string(debug.Stack())),
			}}
		}
	}()
	switch req.Op {
	case OpPing:
		return &Response{Status: modules.StatusOK, Msg: "pong"}
	case OpConfirm:
		m := &txn.Manager{Dir: srv.TxnDir}
		o, err := m.Confirm(req.Txn)
		if err != nil {
			return failed(fmt.Errorf("confirm transaction: %w", err))
		}
		return &Response{Status: modules.StatusOK, Transaction: o}
	case OpRollback:
		m := &txn.Manager{Dir: srv.TxnDir}
		o, err := m.Rollback(req.Txn, "the controller lost the connection during the change and never saw it")
		if errors.Is(err, txn.ErrNoTransaction) {
			// The apply began none: it changed nothing, or failed first, or never ran.
			return &Response{Status: modules.StatusOK, Transaction: &modules.Transaction{ID: req.Txn, State: modules.TxnNone}}
		}
		if err != nil {
			return failed(fmt.Errorf("roll back transaction: %w", err))
		}
		return &Response{Status: modules.StatusOK, Transaction: o}
	case OpFacts:
		if req.Module == "" {
			f, err := srv.facts(ctx)
			if err != nil {
				return failed(err)
			}
			return dataResponse(f)
		}
	}
	m, ok := srv.Registry.Lookup(req.Module)
	if !ok {
		msg := fmt.Sprintf("unknown module %q", req.Module)
		if s := modules.Suggest(req.Module, srv.Registry.Names()); s != "" {
			msg += fmt.Sprintf("; did you mean %q?", s)
		}
		return failed(errors.New(msg + " (the helper and the controller come from different builds?)"))
	}
	if !m.RunsOnHost() {
		if _, ctl := m.Module().(modules.ControllerOnly); ctl {
			return failed(fmt.Errorf("module %s runs on the controller, not on hosts", req.Module))
		}
		return failed(fmt.Errorf("module %s has no host-side code", req.Module))
	}
	info := m.Info()
	args, norm, err := m.Args(req.Args)
	if err != nil {
		return failed(fmt.Errorf("%s: %w", req.Module, err))
	}
	if errs := m.Validate(args); len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = e.Error()
		}
		return failed(fmt.Errorf("%s: invalid arguments: %s", req.Module, strings.Join(msgs, "; ")))
	}
	env := modules.NewEnv(info, req.Sensitive)
	env.OutputLimit = srv.OutputLimit
	env.StateDir = srv.StateDir
	env.TxnDir = srv.TxnDir
	env.ConfirmTimeout = time.Duration(req.ConfirmTimeoutMS) * time.Millisecond
	if req.Op == OpApply {
		env.TxnID = req.Txn
	}
	env.Logger = srv.Logger
	// The module gets the secrets too: what it shortens (a command line, captured output)
	// it must redact first, or a cut through a secret would leave a part of it that the
	// redaction below no longer recognises.
	secrets := append(modules.SecretStrings(norm, env.SensitiveArgs()), req.Redact...)
	env.SetSecrets(secrets)
	res, runErr := m.Run(ctx, env, args, req.Op == OpApply)
	res.Redact(secrets)
	resp = &Response{Status: StatusFailed}
	if res != nil {
		resp.Status = res.Status
		resp.Msg = res.Msg
		resp.Warnings = res.Warnings
		resp.RebootRequired = res.RebootRequired
		resp.Diff = res.Diff
		resp.Transaction = res.Transaction
		b, err := m.Data(res.Data, env.Redactor())
		switch {
		case err == nil:
			resp.Data = b
		case runErr == nil:
			return failed(fmt.Errorf("encode data: %w", err))
		default:
			// The module's own failure is what the response reports; its data is lost.
			runErr = fmt.Errorf("%w (and its data did not encode: %v)", runErr, err)
		}
	}
	if runErr != nil {
		if ctx.Err() == context.DeadlineExceeded {
			runErr = fmt.Errorf("timed out after %s: %w", timeout, runErr)
		}
		e := &modules.Failure{Msg: runErr.Error()}
		var f *modules.Failure
		if errors.As(runErr, &f) {
			e.Stderr = f.Stderr
		}
		red := env.Redactor()
		e.Msg, e.Stderr = red.Redact(e.Msg), red.Redact(e.Stderr)
		resp.Status, resp.Error = StatusFailed, e
		return resp
	}
	if res == nil {
		return failed(fmt.Errorf("%s returned no result", req.Module))
	}
	if !modules.Status(res.Status).FromModule() {
		return failed(fmt.Errorf("%s returned an invalid status %q", req.Module, res.Status))
	}
	if req.Op != OpApply && res.Status == modules.StatusChanged {
		return failed(fmt.Errorf("%s reported a change in check mode", req.Module))
	}
	return resp
}

// requestSecrets returns the values a request says must never be shown, for a panic that
// may have come before the arguments were checked: the strings of its sensitive arguments
// (named in the request or by the module's schema, when the module is known) and the
// values to redact.
func (srv *server) requestSecrets(req *Request) []string {
	var info modules.Info
	if m, ok := srv.Registry.Lookup(req.Module); ok {
		info = m.Info()
	}
	return append(modules.SecretStrings(req.Args, modules.NewEnv(info, req.Sensitive).SensitiveArgs()), req.Redact...)
}

func failed(err error) *Response {
	return &Response{Status: StatusFailed, Error: &modules.Failure{Msg: err.Error()}}
}

func dataResponse(data map[string]any) *Response {
	b, err := json.Marshal(data)
	if err != nil {
		return failed(fmt.Errorf("encode facts: %w", err))
	}
	return &Response{Status: modules.StatusOK, Data: b}
}

// facts answers the facts op: what the "facts" module gathers when the helper has one,
// over the base facts. A facts module that fails fails the op, so the task that needed the
// facts reports why rather than a missing attribute.
func (srv *Server) facts(ctx context.Context) (map[string]any, error) {
	f := baseFacts(ctx)
	m, ok := srv.Registry.Lookup("facts")
	if !ok {
		return f, nil
	}
	if !m.RunsOnHost() {
		return f, nil
	}
	args, _, err := m.Args(cty.EmptyObjectVal)
	if err != nil {
		return nil, fmt.Errorf("facts: %w", err)
	}
	res, err := m.Run(ctx, modules.NewEnv(m.Info(), nil), args, false)
	if err != nil {
		return nil, fmt.Errorf("facts: %w", err)
	}
	if res == nil {
		return nil, errors.New("facts returned no result")
	}
	data, ok := res.Data.(map[string]any)
	if res.Data != nil && !ok {
		return nil, fmt.Errorf("facts returned data of type %T, not a map", res.Data)
	}
	for k, v := range data {
		f[k] = v
	}
	return f, nil
}

// baseFacts are the facts every host has, answered without a module.
func baseFacts(ctx context.Context) map[string]any {
	_ = ctx // reading a few small files from /proc and /etc does not block
	f := map[string]any{"os": runtime.GOOS, "arch": runtime.GOARCH, "uid": os.Geteuid()}
	if h, err := os.Hostname(); err == nil {
		f["hostname"] = h
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		f["kernel"] = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		rel := map[string]any{}
		for _, l := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(l, "=")
			if !ok || strings.HasPrefix(k, "#") {
				continue
			}
			rel[strings.ToLower(strings.TrimSpace(k))] = strings.Trim(strings.TrimSpace(v), `"'`)
		}
		f["os_release"] = rel
	}
	return f
}
