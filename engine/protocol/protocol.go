// Package protocol is the conversation between the controller and runbook-helper on a host:
// newline-delimited JSON over the helper's stdin and stdout. The helper speaks first with a
// hello; then the controller sends requests and the helper answers each with one response
// carrying the same id. See docs/helper.md.
package protocol

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/runbook/runbook/modules"
)

// Version is the protocol this build speaks. Both sides must speak the same one: the
// controller pushes the helper it embeds, so a mismatch means a stale or foreign helper.
const Version = 1

// MaxLine bounds one message. Arguments (a copied file's content) and results (a command's
// output, itself capped) travel in one line each; anything larger is a bug or an attack.
const MaxLine = 64 << 20

// Operations a request can ask for.
const (
	OpPing   = "ping"
	OpFacts  = "facts"
	OpCheck  = "check"
	OpApply  = "apply"
	OpCancel = "cancel" // id names the request to cancel; the helper sends no response to it
	// OpConfirm confirms the transaction Txn names (modules/txn): sent over a new connection
	// after an apply that answered with a pending transaction. The response's Transaction
	// says how it ended: confirmed, or rolled back when the host gave up on it first.
	OpConfirm = "confirm"
	// OpRollback rolls the transaction Txn names back now when it is still pending, and says
	// how it ended: the controller sends it over a new connection when it lost the answer to
	// the apply that may have begun it (it never keeps a change it did not see).
	OpRollback = "rollback"
)

// StatusFailed is the response status of a request that did not complete; the other
// statuses a response may carry are those a module reports (modules.Status.FromModule).
const StatusFailed = modules.StatusFailed

// Hello is the helper's first line.
type Hello struct {
	Type     string   `json:"type"` // always "hello"
	Protocol int      `json:"protocol"`
	Build    string   `json:"build"` // sha256 of the helper binary, hex
	Modules  []string `json:"modules"`
	OS       string   `json:"os"`
	Arch     string   `json:"arch"`
	UID      int      `json:"uid"`
	// Verified says how the start script verified the helper's file before it ran it:
	// "hash" when it hashed it, "hash STAMP" when it also read the file's identity (stat's
	// device, inode, size, mode, owner, mtime and ctime) just before hashing, and "stamp"
	// when that identity matched the one the controller recorded at an earlier hash.
	Verified string `json:"verified,omitempty"`
	// Recovered lists transactions the helper rolled back when it started: left pending by
	// an earlier run that crashed, or by a reboot (modules/txn).
	Recovered []modules.Transaction `json:"recovered,omitempty"`
	// BootID is the host's boot id (/proc/sys/kernel/random/boot_id): the reboot module's
	// controller half waits for a hello with another one. "" when the host has none.
	BootID string `json:"boot_id,omitempty"`
}

// Request asks the helper to do one thing.
type Request struct {
	// ID is chosen by the controller, unique among requests in flight, never 0.
	ID     uint64
	Op     string
	Module string
	// Args is the module's arguments, an object of plain values (no marks).
	Args cty.Value
	// Sensitive names arguments whose values must never be shown.
	Sensitive []string
	// Redact holds more values that must never be shown: those of sensitive variables that
	// an argument holds inside a longer string ("echo ${var.token}"), which the host may
	// print back alone. The helper redacts them like the sensitive arguments' values,
	// before anything it returns is shortened.
	Redact []string
	// TimeoutMS bounds the request on the helper; 0 means the helper's default.
	TimeoutMS int64
	// ConfirmTimeoutMS is the run's time for a transaction's confirmation
	// (modules.Env.ConfirmTimeout): 0 the default, negative none.
	ConfirmTimeoutMS int64
	// Txn names the transaction an OpConfirm or OpRollback is about; on an OpApply, the id
	// a transaction the module begins takes.
	Txn string
	// Chain puts check and apply requests in a pipeline (the controller sends a run of
	// tasks without waiting for each answer): the helper runs the requests of one chain
	// one after the other, in the order they arrived, each with its whole TimeoutMS from
	// when it starts, and once one has failed it runs none of the chain's later ones (they
	// answer StatusFailed, with NotRun set and ErrNotRun). "" is no chain.
	Chain string
	// Tolerated says a failure of this request does not stop its chain (the task's
	// on_failure is "continue").
	Tolerated bool
	// ArgsMemo, when set, encodes Args: the wire form of equal arguments is reused.
	ArgsMemo *ArgsMemo
}

// ArgsMemo keeps the wire form of the last arguments it encoded, for the next request whose
// arguments are equal: the same task's on the next host, which most often are. Encoding
// arguments is a large part of a request's cost on the controller; comparing them is a
// small one. It is safe for concurrent use, and its zero value is ready.
type ArgsMemo struct {
	mu   sync.Mutex
	args cty.Value
	wire json.RawMessage
}

// Encode is EncodeArgs(args), from memory when args equal the last arguments encoded
// (cty's RawEquals: the same types, values and marks). A nil ArgsMemo encodes each time.
func (m *ArgsMemo) Encode(args cty.Value) (json.RawMessage, error) {
	if m == nil {
		return EncodeArgs(args)
	}
	m.mu.Lock()
	last, wire := m.args, m.wire
	m.mu.Unlock()
	if last != cty.NilVal && args != cty.NilVal && last.RawEquals(args) {
		return wire, nil
	}
	wire, err := EncodeArgs(args)
	if err != nil {
		return nil, err
	}
	if len(wire) > maxArgsMemo {
		return wire, nil // large arguments (a file's content) are not kept for the run
	}
	m.mu.Lock()
	m.args, m.wire = args, wire
	m.mu.Unlock()
	return wire, nil
}

// maxArgsMemo bounds the wire form an ArgsMemo keeps: one per task for the whole run.
const maxArgsMemo = 64 << 10

// ErrNotRun is the message of a chained request the helper did not run, because a request
// before it in its chain failed.
const ErrNotRun = "not run: a task before it in its pipeline failed"

type wireRequest struct {
	ID        uint64          `json:"id"`
	Op        string          `json:"op"`
	Module    string          `json:"module,omitempty"`
	Args      json.RawMessage `json:"args,omitempty"`
	Sensitive []string        `json:"sensitive,omitempty"`
	Redact    []string        `json:"redact,omitempty"`
	TimeoutMS int64           `json:"timeout_ms,omitempty"`
	Confirm   int64           `json:"confirm_timeout_ms,omitempty"`
	Txn       string          `json:"txn,omitempty"`
	Chain     string          `json:"chain,omitempty"`
	Tolerated bool            `json:"tolerated,omitempty"`
}

// Response answers the request with the same ID.
type Response struct {
	ID     uint64         `json:"id"`
	Status modules.Status `json:"status"` // one a module reports, or StatusFailed
	Diff   *modules.Diff  `json:"diff,omitempty"`
	// Data is a JSON object of registered values; see DataValue.
	Data           json.RawMessage  `json:"data,omitempty"`
	Msg            string           `json:"msg,omitempty"`
	Warnings       []string         `json:"warnings,omitempty"`
	RebootRequired bool             `json:"reboot_required,omitempty"`
	Error          *modules.Failure `json:"error,omitempty"`
	// Transaction is the transaction an apply's change runs in, or how the one an
	// OpConfirm names ended.
	Transaction *modules.Transaction `json:"transaction,omitempty"`
	DurationMS  int64                `json:"duration_ms"`
	// NotRun marks the answer (StatusFailed, ErrNotRun) of a chained request the helper
	// did not run, because one before it in its chain failed.
	NotRun bool `json:"not_run,omitempty"`
}

// Err returns the response's error, or nil when the request succeeded.
func (r *Response) Err() error {
	if r.Error == nil {
		return nil
	}
	return r.Error
}

// validStatus reports whether a response may carry s: a status a module reports, or
// StatusFailed. The engine's own statuses (skipped, unreachable) never come from a helper.
func validStatus(s modules.Status) bool { return s.FromModule() || s == StatusFailed }

var validOp = map[string]bool{OpPing: true, OpFacts: true, OpCheck: true, OpApply: true, OpCancel: true, OpConfirm: true, OpRollback: true}

// EncodeArgs turns module arguments into their wire form: cty's JSON with the type beside
// the value, so the helper recovers exactly the value's type. The arguments carry no marks:
// the sensitive ones are named in the request's Sensitive, and a marked value is refused
// rather than sent as if it were plain.
func EncodeArgs(args cty.Value) (json.RawMessage, error) {
	if args == cty.NilVal || args.IsNull() {
		return nil, nil // absent arguments: the module's defaults apply
	}
	if args.ContainsMarked() {
		return nil, errors.New("arguments still carry marks: name the sensitive ones in Sensitive")
	}
	if !args.IsWhollyKnown() {
		return nil, errors.New("arguments contain values not known yet")
	}
	b, err := ctyjson.Marshal(args, cty.DynamicPseudoType)
	if err != nil {
		return nil, fmt.Errorf("encode arguments: %w", err)
	}
	return b, nil
}

// DecodeArgs is EncodeArgs' inverse.
func DecodeArgs(raw json.RawMessage) (cty.Value, error) {
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return cty.NullVal(cty.DynamicPseudoType), nil
	}
	v, err := ctyjson.Unmarshal(raw, cty.DynamicPseudoType)
	if err != nil {
		return cty.NilVal, fmt.Errorf("decode arguments: %w", err)
	}
	if v.IsNull() {
		return cty.NullVal(cty.DynamicPseudoType), nil
	}
	return v, nil
}

// EncodeRequest renders a request as one line, newline included.
func EncodeRequest(req *Request) ([]byte, error) {
	w := wireRequest{ID: req.ID, Op: req.Op, Module: req.Module, Redact: req.Redact, TimeoutMS: req.TimeoutMS,
		Confirm: req.ConfirmTimeoutMS, Txn: req.Txn, Chain: req.Chain, Tolerated: req.Tolerated}
	args, err := req.ArgsMemo.Encode(req.Args)
	if err != nil {
		return nil, err
	}
	w.Args, w.Sensitive = args, req.Sensitive
	b, err := marshalLine(w)
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	return b, nil
}

// marshalLine encodes v as one line. HTML escaping is off: messages carry shell commands
// and file content, and "2>&1" should read as itself in a trace.
func marshalLine(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// DecodeRequest parses one request line (without or with its newline). Unknown fields are
// errors: both ends come from one build, so an unknown field is a bug worth seeing.
func DecodeRequest(line []byte) (*Request, error) {
	var w wireRequest
	if err := strictUnmarshal(line, &w); err != nil {
		return nil, fmt.Errorf("malformed request: %w", err)
	}
	if w.ID == 0 {
		return nil, errors.New("malformed request: id must be a positive integer")
	}
	if !validOp[w.Op] {
		return nil, fmt.Errorf("malformed request %d: unknown op %q", w.ID, w.Op)
	}
	if (w.Op == OpCheck || w.Op == OpApply) && w.Module == "" {
		return nil, fmt.Errorf("malformed request %d: op %q needs a module", w.ID, w.Op)
	}
	if (w.Op == OpConfirm || w.Op == OpRollback) && w.Txn == "" {
		return nil, fmt.Errorf("malformed request %d: op %q needs a txn", w.ID, w.Op)
	}
	if w.TimeoutMS < 0 {
		return nil, fmt.Errorf("malformed request %d: negative timeout_ms", w.ID)
	}
	args, err := DecodeArgs(w.Args)
	if err != nil {
		return nil, fmt.Errorf("malformed request %d: %w", w.ID, err)
	}
	if w.Chain != "" && w.Op != OpCheck && w.Op != OpApply {
		return nil, fmt.Errorf("malformed request %d: only check and apply requests form a chain", w.ID)
	}
	if len(w.Chain) > 64 {
		return nil, fmt.Errorf("malformed request %d: a chain's name is at most 64 bytes", w.ID)
	}
	return &Request{ID: w.ID, Op: w.Op, Module: w.Module, Args: args, Sensitive: w.Sensitive, Redact: w.Redact,
		TimeoutMS: w.TimeoutMS, ConfirmTimeoutMS: w.Confirm, Txn: w.Txn, Chain: w.Chain, Tolerated: w.Tolerated}, nil
}

// EncodeResponse renders a response as one line, newline included.
func EncodeResponse(resp *Response) ([]byte, error) {
	b, err := marshalLine(resp)
	if err != nil {
		return nil, fmt.Errorf("encode response %d: %w", resp.ID, err)
	}
	return b, nil
}

// DecodeResponse parses one response line.
func DecodeResponse(line []byte) (*Response, error) {
	var r Response
	if err := strictUnmarshal(line, &r); err != nil {
		return nil, fmt.Errorf("malformed response: %w", err)
	}
	if !validStatus(r.Status) {
		return nil, fmt.Errorf("malformed response %d: unknown status %q", r.ID, r.Status)
	}
	if (r.Status == StatusFailed) != (r.Error != nil) {
		return nil, fmt.Errorf("malformed response %d: status %q does not agree with error", r.ID, r.Status)
	}
	if len(r.Data) > 0 && !bytes.Equal(r.Data, []byte("null")) {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(r.Data, &obj); err != nil {
			return nil, fmt.Errorf("malformed response %d: data must be an object: %w", r.ID, err)
		}
	}
	return &r, nil
}

// DecodeHello parses the helper's first line and checks the protocol version.
func DecodeHello(line []byte) (*Hello, error) {
	var h Hello
	if err := json.Unmarshal(line, &h); err != nil || h.Type != "hello" {
		return nil, fmt.Errorf("the helper did not start with a hello; its first line was %q", clip(line, 200))
	}
	if h.Protocol != Version {
		return nil, fmt.Errorf("the helper speaks protocol %d but this runbook speaks protocol %d; replace the helper (build %s) with the one this runbook ships",
			h.Protocol, Version, clip([]byte(h.Build), 64))
	}
	return &h, nil
}

// DataValue converts the response's data into an object with one attribute per field,
// each of its declared type (absent ones null); see modules.DataFromJSON.
func (r *Response) DataValue(fields []modules.Field) (cty.Value, error) {
	return modules.DataFromJSON(r.Data, fields)
}

func strictUnmarshal(line []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("more than one JSON value on the line")
	}
	// A second value separated by whitespace only is caught by More; trailing garbage
	// that is not a value is caught here.
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

func clip(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// ErrLineTooLong is returned for a line longer than the limit; the line is skipped, so the
// stream can go on with the next one.
var ErrLineTooLong = fmt.Errorf("line longer than %d bytes", MaxLine)

// lineReader reads newline-terminated lines up to a limit without ever holding more than
// the limit in memory.
type lineReader struct {
	r   *bufio.Reader
	max int
	// stop makes a line over max an error at once, instead of one returned after the
	// line's end was skipped: a peer that writes an endless line then fails at the limit.
	stop bool
}

// lineBuffer is the lineReader's read buffer. Lines longer than it are gathered piece by
// piece, so it bounds nothing; it is small because a controller holds one per host (a
// thousand hosts' 64 KiB buffers were 63 MiB of its heap), and most lines are short.
const lineBuffer = 4 << 10

func newLineReader(r io.Reader, max int) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, lineBuffer), max: max}
}

// next returns the next line without its newline. A last line without a newline is
// returned as a line; io.EOF follows it.
func (l *lineReader) next() ([]byte, error) {
	var buf []byte
	tooLong := false
	for {
		chunk, err := l.r.ReadSlice('\n')
		if !tooLong {
			if len(buf)+len(chunk) > l.max+1 { // +1: the newline does not count
				if l.stop {
					return nil, ErrLineTooLong
				}
				tooLong = true
				buf = nil
			} else {
				buf = append(buf, chunk...)
			}
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err == io.EOF && (len(buf) > 0 || tooLong):
			if tooLong {
				return nil, ErrLineTooLong
			}
			return buf, nil
		case err != nil:
			return nil, err
		}
		if tooLong {
			return nil, ErrLineTooLong
		}
		buf = bytes.TrimSuffix(buf, []byte("\n"))
		buf = bytes.TrimSuffix(buf, []byte("\r"))
		return buf, nil
	}
}
