package protocol

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
)

// testModule is a Runner whose behaviour is a function, so each test states it inline.
type testModule struct {
	info modules.Info
	run  func(ctx context.Context, env *modules.Env, args cty.Value, apply bool) (*modules.Result, error)
}

func (m testModule) Info() modules.Info { return m.info }
func (m testModule) Run(ctx context.Context, env *modules.Env, args cty.Value, apply bool) (*modules.Result, error) {
	return m.run(ctx, env, args, apply)
}

type controllerOnly struct{}

func (controllerOnly) Info() modules.Info { return modules.Info{Name: "ctl"} }
func (controllerOnly) RunsOnController()  {}

type mapRegistry map[string]modules.Module

func (r mapRegistry) Lookup(n string) (*modules.Def, bool) {
	m, ok := r[n]
	if !ok {
		return nil, false
	}
	return modules.NewDef[cty.Value, map[string]any](m), true
}
func (r mapRegistry) Names() []string {
	var out []string
	for n := range r {
		out = append(out, n)
	}
	return out
}

var textArg = modules.Schema{Args: []modules.Arg{
	{Name: "text", Type: cty.String},
	{Name: "secret", Type: cty.String, Sensitive: true},
	{Name: "ms", Type: cty.Number, Default: cty.Zero},
}}

func testRegistry() mapRegistry {
	return mapRegistry{
		"echo": testModule{info: modules.Info{Name: "echo", Schema: textArg}, run: func(_ context.Context, _ *modules.Env, args cty.Value, apply bool) (*modules.Result, error) {
			status := modules.StatusDrift
			if apply {
				status = modules.StatusChanged
			}
			t := args.GetAttr("text")
			text := ""
			if !t.IsNull() {
				text = t.AsString()
			}
			s := args.GetAttr("secret")
			msg := "said " + text
			if !s.IsNull() {
				msg += " and " + s.AsString() // a careless module: the server must redact
			}
			return &modules.Result{Status: status, Msg: msg, Data: map[string]any{"text": text, "n": 3},
				Diff: &modules.Diff{Before: "", After: text + "\n", AfterHeader: "echo"}}, nil
		}},
		"slow": testModule{info: modules.Info{Name: "slow", Schema: textArg}, run: func(ctx context.Context, _ *modules.Env, args cty.Value, _ bool) (*modules.Result, error) {
			ms, _ := args.GetAttr("ms").AsBigFloat().Int64()
			select {
			case <-time.After(time.Duration(ms) * time.Millisecond):
				return &modules.Result{Status: modules.StatusOK, Data: map[string]any{"ms": ms}}, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}},
		"boom": testModule{info: modules.Info{Name: "boom"}, run: func(context.Context, *modules.Env, cty.Value, bool) (*modules.Result, error) {
			var m map[string]int
			m["x"] = 1 // nil map write: a module bug
			return nil, nil
		}},
		"blurt": testModule{info: modules.Info{Name: "blurt", Schema: textArg}, run: func(_ context.Context, _ *modules.Env, args cty.Value, _ bool) (*modules.Result, error) {
			panic(fmt.Sprintf("cannot say %#v", args)) // a module bug that quotes its arguments
		}},
		"fail": testModule{info: modules.Info{Name: "fail", Schema: textArg}, run: func(context.Context, *modules.Env, cty.Value, bool) (*modules.Result, error) {
			return &modules.Result{Status: modules.StatusChanged, Data: map[string]any{"rc": 2}}, &modules.Failure{Msg: "exit status 2", Stderr: "no such thing"}
		}},
		"liar": testModule{info: modules.Info{Name: "liar"}, run: func(context.Context, *modules.Env, cty.Value, bool) (*modules.Result, error) {
			return &modules.Result{Status: modules.StatusChanged}, nil
		}},
		"ctl": controllerOnly{},
	}
}

// notShown checks that secret is nowhere in a response.
func notShown(secret string) func(*testing.T, *Response) {
	return func(t *testing.T, r *Response) {
		if b, _ := json.Marshal(r); strings.Contains(string(b), secret) {
			t.Errorf("%q shows in %s", secret, b)
		}
	}
}

// pair starts a server on pipes and returns a client talking to it, the raw writer to
// the server (for malformed input) and a function that closes the input and returns
// Serve's result.
func pair(t *testing.T, srv *Server) (*Client, io.Writer, func() error) {
	t.Helper()
	return pairWith(t, srv, nil)
}

// pairWith is pair with the client writing through wrap(the pipe to the server).
func pairWith(t *testing.T, srv *Server, wrap func(io.Writer) io.Writer) (*Client, io.Writer, func() error) {
	t.Helper()
	reqR, reqW := io.Pipe()
	respR, respW := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		errc <- srv.Serve(context.Background(), reqR, respW)
		respW.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var w io.Writer = reqW
	if wrap != nil {
		w = wrap(reqW)
	}
	c, err := NewClient(ctx, respR, w)
	if err != nil {
		t.Fatal(err)
	}
	stop := func() error {
		reqW.Close()
		select {
		case err := <-errc:
			return err
		case <-time.After(5 * time.Second):
			t.Fatal("Serve did not return after its input closed")
			return nil
		}
	}
	t.Cleanup(func() { reqW.Close(); respR.Close() })
	return c, reqW, stop
}

func obj(kv ...any) cty.Value {
	m := map[string]cty.Value{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1].(cty.Value)
	}
	return cty.ObjectVal(m)
}

func TestServeRequests(t *testing.T) {
	c, _, stop := pair(t, &Server{Registry: testRegistry(), Build: "test-build"})
	h := c.Hello()
	if h.Type != "hello" || h.Protocol != Version || h.Build != "test-build" || len(h.Modules) != len(testRegistry())-1 {
		t.Errorf("hello = %+v", h)
	}
	tests := []struct {
		name       string
		req        Request
		wantStatus modules.Status
		wantErr    string // substring of the error message
		wantMsg    string
		check      func(t *testing.T, r *Response)
	}{
		{name: "ping", req: Request{Op: OpPing}, wantStatus: "ok", wantMsg: "pong"},
		{name: "base facts", req: Request{Op: OpFacts}, wantStatus: "ok", check: func(t *testing.T, r *Response) {
			v, err := r.DataValue(nil)
			if err != nil || v.GetAttr("arch").AsString() == "" {
				t.Errorf("facts = %#v, %v", v, err)
			}
		}},
		{name: "check", req: Request{Op: OpCheck, Module: "echo", Args: obj("text", cty.StringVal("hi"))}, wantStatus: "drift", wantMsg: "said hi"},
		{name: "apply", req: Request{Op: OpApply, Module: "echo", Args: obj("text", cty.StringVal("hi"))}, wantStatus: "changed", check: func(t *testing.T, r *Response) {
			v, err := r.DataValue([]modules.Field{{Name: "text", Type: cty.String}, {Name: "n", Type: cty.Number}, {Name: "absent", Type: cty.Bool}})
			if err != nil {
				t.Fatal(err)
			}
			if v.GetAttr("text").AsString() != "hi" || !v.GetAttr("n").RawEquals(cty.NumberIntVal(3)) || !v.GetAttr("absent").IsNull() {
				t.Errorf("data = %#v", v)
			}
			if r.Diff == nil || r.Diff.After != "hi\n" {
				t.Errorf("diff = %+v", r.Diff)
			}
		}},
		{name: "schema-sensitive redacted", req: Request{Op: OpCheck, Module: "echo", Args: obj("text", cty.StringVal("hi"), "secret", cty.StringVal("p4ssw0rd"))},
			wantStatus: "drift", wantMsg: "said hi and " + modules.Redacted},
		{name: "sensitive argument redacted", req: Request{Op: OpCheck, Module: "echo", Args: obj("text", cty.StringVal("t0ps3cret")), Sensitive: []string{"text"}},
			wantStatus: "drift", check: func(t *testing.T, r *Response) {
				if strings.Contains(string(r.Data)+r.Msg+r.Diff.After, "t0ps3cret") {
					t.Errorf("secret leaked: %s %q %q", r.Data, r.Msg, r.Diff.After)
				}
			}},
		// A sensitive variable's value inside a longer, unmarked argument: the controller
		// names the value, and the helper redacts it wherever it shows.
		{name: "value to redact", req: Request{Op: OpCheck, Module: "echo", Args: obj("text", cty.StringVal("token=t0ps3cret")), Redact: []string{"t0ps3cret"}},
			wantStatus: "drift", check: func(t *testing.T, r *Response) {
				if strings.Contains(string(r.Data)+r.Msg+r.Diff.After, "t0ps3cret") || !strings.Contains(r.Msg, "token="+modules.Redacted) {
					t.Errorf("not redacted: %s %q %q", r.Data, r.Msg, r.Diff.After)
				}
			}},
		{name: "unknown module", req: Request{Op: OpCheck, Module: "ecko"}, wantStatus: "failed", wantErr: `unknown module "ecko"; did you mean "echo"?`},
		{name: "controller module", req: Request{Op: OpCheck, Module: "ctl"}, wantStatus: "failed", wantErr: "runs on the controller"},
		{name: "bad args", req: Request{Op: OpCheck, Module: "echo", Args: obj("txt", cty.True)}, wantStatus: "failed", wantErr: `unsupported argument "txt"`},
		{name: "panic", req: Request{Op: OpApply, Module: "boom"}, wantStatus: "failed", wantErr: "module boom panicked"},
		// A panic that quotes the arguments is redacted like any other error.
		{name: "panic quoting a schema-sensitive argument", req: Request{Op: OpApply, Module: "blurt", Args: obj("text", cty.StringVal("hi"), "secret", cty.StringVal("p4ssw0rd"))},
			wantStatus: "failed", wantErr: "module blurt panicked", check: notShown("p4ssw0rd")},
		{name: "panic quoting a sensitive argument", req: Request{Op: OpApply, Module: "blurt", Args: obj("text", cty.StringVal("t0ps3cret")), Sensitive: []string{"text"}},
			wantStatus: "failed", wantErr: "module blurt panicked", check: notShown("t0ps3cret")},
		{name: "panic quoting a value to redact", req: Request{Op: OpApply, Module: "blurt", Args: obj("text", cty.StringVal("token=t0ps3cret")), Redact: []string{"t0ps3cret"}},
			wantStatus: "failed", wantErr: "module blurt panicked", check: notShown("t0ps3cret")},
		{name: "failure keeps data and stderr", req: Request{Op: OpApply, Module: "fail"}, wantStatus: "failed", wantErr: "exit status 2", check: func(t *testing.T, r *Response) {
			if r.Error.Stderr != "no such thing" || !strings.Contains(string(r.Data), `"rc":2`) {
				t.Errorf("response = %+v", r)
			}
		}},
		{name: "change in check mode is refused", req: Request{Op: OpCheck, Module: "liar"}, wantStatus: "failed", wantErr: "reported a change in check mode"},
		{name: "timeout", req: Request{Op: OpCheck, Module: "slow", Args: obj("ms", cty.NumberIntVal(5000)), TimeoutMS: 30}, wantStatus: "failed", wantErr: "timed out after 30ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			r, err := c.Call(ctx, &tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != tt.wantStatus {
				t.Errorf("status = %q, want %q (%+v)", r.Status, tt.wantStatus, r.Error)
			}
			if tt.wantErr != "" && (r.Error == nil || !strings.Contains(r.Error.Msg, tt.wantErr)) {
				t.Errorf("error = %+v, want %q", r.Error, tt.wantErr)
			}
			if tt.wantMsg != "" && r.Msg != tt.wantMsg {
				t.Errorf("msg = %q, want %q", r.Msg, tt.wantMsg)
			}
			if tt.check != nil {
				tt.check(t, r)
			}
		})
	}
	if err := stop(); err != nil {
		t.Errorf("Serve = %v, want nil on EOF", err)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("client did not notice the helper exit")
	}
	if _, err := c.Call(context.Background(), &Request{Op: OpPing}); err == nil {
		t.Error("Call after the helper exited must fail")
	}
}

func TestConcurrentCallsAndCancel(t *testing.T) {
	c, _, stop := pair(t, &Server{Registry: testRegistry(), Build: "b"})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ms := int64(40 - 5*i) // later calls finish first: answers arrive out of order
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			r, err := c.Call(ctx, &Request{Op: OpCheck, Module: "slow", Args: obj("ms", cty.NumberIntVal(ms))})
			if err != nil {
				t.Error(err)
				return
			}
			v, err := r.DataValue([]modules.Field{{Name: "ms", Type: cty.Number}})
			if err != nil || !v.GetAttr("ms").RawEquals(cty.NumberIntVal(ms)) {
				t.Errorf("call %d got %s (%v)", i, r.Data, err)
			}
		}()
	}
	wg.Wait()

	// A cancelled call returns at once; the helper stops the module and its late answer
	// is an orphan.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Call(ctx, &Request{Op: OpCheck, Module: "slow", Args: obj("ms", cty.NumberIntVal(10000)), TimeoutMS: 60000})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	select {
	case r := <-c.Orphans():
		if r.Status != StatusFailed || time.Since(start) > 3*time.Second {
			t.Errorf("orphan = %+v after %s", r, time.Since(start))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the cancelled module was not stopped")
	}
	// The conversation survives a cancel.
	if r, err := c.Call(context.Background(), &Request{Op: OpPing}); err != nil || r.Status != "ok" {
		t.Fatalf("ping after cancel: %v %v", r, err)
	}
	if err := stop(); err != nil {
		t.Error(err)
	}
}

func TestInFlightLimit(t *testing.T) {
	c, _, stop := pair(t, &Server{Registry: testRegistry(), Build: "b", MaxInFlight: 1})
	done := make(chan *Response, 1)
	go func() {
		r, _ := c.Call(context.Background(), &Request{Op: OpCheck, Module: "slow", Args: obj("ms", cty.NumberIntVal(300))})
		done <- r
	}()
	time.Sleep(50 * time.Millisecond)
	r, err := c.Call(context.Background(), &Request{Op: OpPing})
	if err != nil || r.Status != StatusFailed || !strings.Contains(r.Error.Msg, "too many requests in flight (limit 1)") {
		t.Errorf("second call = %+v, %v", r, err)
	}
	if r := <-done; r == nil || r.Status != "ok" {
		t.Errorf("first call = %+v", r)
	}
	if _, err := c.Call(context.Background(), &Request{Op: OpCancel, ID: 1}); err == nil {
		t.Error("a cancel request must be refused")
	}
	if err := stop(); err != nil {
		t.Error(err)
	}
}

func TestMalformedLines(t *testing.T) {
	c, raw, stop := pair(t, &Server{Registry: testRegistry(), Build: "b"})
	tests := []struct {
		line    string
		wantID  uint64
		wantErr string
	}{
		{"this is not json\n", 0, "malformed request"},
		{`{"id":7,"op":"explode"}` + "\n", 7, `unknown op "explode"`},
		{`{"id":8,"op":"check"}` + "\n", 8, "needs a module"},
		{`{"id":9,"op":"ping","colour":"red"}` + "\n", 9, "unknown field"},
		{`{"id":10,"op":"check","module":"echo","args":{"value":1}}` + "\n", 10, "decode arguments"},
		{`{"id":0,"op":"ping"}` + "\n", 0, "positive integer"},
	}
	for _, tt := range tests {
		if _, err := io.WriteString(raw, tt.line); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-c.Orphans():
			if r.ID != tt.wantID || r.Status != StatusFailed || !strings.Contains(r.Error.Msg, tt.wantErr) {
				t.Errorf("%q: got %+v %+v, want id %d and %q", tt.line, r, r.Error, tt.wantID, tt.wantErr)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%q: no answer", tt.line)
		}
	}
	if r, err := c.Call(context.Background(), &Request{Op: OpPing}); err != nil || r.Status != "ok" {
		t.Fatalf("the helper must keep serving: %v %v", r, err)
	}
	if err := stop(); err != nil {
		t.Error(err)
	}
}

func TestServeLineTooLong(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 65 MiB")
	}
	c, raw, stop := pair(t, &Server{Registry: testRegistry(), Build: "b"})
	go func() {
		chunk := bytes.Repeat([]byte("x"), 1<<20)
		for range 65 {
			if _, err := raw.Write(chunk); err != nil {
				return
			}
		}
		_, _ = raw.Write([]byte("\n"))
	}()
	select {
	case r := <-c.Orphans():
		if r.Status != StatusFailed || !strings.Contains(r.Error.Msg, "request too long: line longer than 67108864 bytes") {
			t.Errorf("got %+v %+v", r, r.Error)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no answer to an overlong line")
	}
	if r, err := c.Call(context.Background(), &Request{Op: OpPing}); err != nil || r.Status != "ok" {
		t.Fatalf("the helper must keep serving: %v %v", r, err)
	}
	if err := stop(); err != nil {
		t.Error(err)
	}
}

func TestEOFStopsRunningRequests(t *testing.T) {
	c, _, stop := pair(t, &Server{Registry: testRegistry(), Build: "b"})
	go func() {
		_, _ = c.Call(context.Background(), &Request{Op: OpCheck, Module: "slow", Args: obj("ms", cty.NumberIntVal(60000))})
	}()
	time.Sleep(20 * time.Millisecond)
	start := time.Now()
	if err := stop(); err != nil {
		t.Error(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Serve took %s to return", d)
	}
}

func TestHello(t *testing.T) {
	tests := []struct {
		name, first string
		wantErr     string
	}{
		{"good", `{"type":"hello","protocol":1,"build":"abc","modules":["file"],"os":"linux","arch":"amd64","uid":0}`, ""},
		{"newer helper", `{"type":"hello","protocol":2,"build":"abc"}`, "the helper speaks protocol 2 but this runbook speaks protocol 1"},
		{"not a hello", `sudo: a password is required`, `first line was "sudo: a password is required"`},
		{"empty", ``, "exited before saying hello"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.first
			if in != "" {
				in += "\n"
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, err := NewClient(ctx, strings.NewReader(in), io.Discard)
			if tt.wantErr == "" {
				if err != nil || c.Hello().Build != "abc" {
					t.Fatalf("NewClient = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
	// A helper that never speaks: the wait ends with ctx.
	r, w := io.Pipe()
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := NewClient(ctx, r, io.Discard); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
}

func TestClientRejectsGarbageResponse(t *testing.T) {
	in := `{"type":"hello","protocol":1,"build":"abc"}` + "\n" + `{"id":1,"status":"fine"}` + "\n"
	c, err := NewClient(context.Background(), strings.NewReader(in), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
		if !strings.Contains(c.Err().Error(), `broke the protocol: malformed response 1: unknown status "fine"`) {
			t.Errorf("err = %v", c.Err())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no error")
	}
}

// endless is a helper that says hello and then writes one line that never ends.
type endless struct{ hello []byte }

func (e *endless) Read(p []byte) (int, error) {
	if len(e.hello) > 0 {
		n := copy(p, e.hello)
		e.hello = e.hello[n:]
		return n, nil
	}
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}

// TestClientEndlessLine: a call without a deadline to a helper that streams an endless line
// fails once the line passes the limit; it does not wait for a newline that never comes.
func TestClientEndlessLine(t *testing.T) {
	c, err := NewClient(context.Background(), &endless{hello: []byte(`{"type":"hello","protocol":1,"build":"abc"}` + "\n")}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Call(context.Background(), &Request{Op: OpPing})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "line longer than") {
			t.Errorf("Call = %v, want the line limit", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Call still waits on an endless line")
	}
}

func TestLineReader(t *testing.T) {
	long := strings.Repeat("x", 100)
	lr := newLineReader(strings.NewReader("a\r\n"+long+"\nb\n"+long+"\nlast"), 50)
	var got []string
	for {
		line, err := lr.next()
		if err == io.EOF {
			break
		}
		if err == ErrLineTooLong {
			got = append(got, "TOO LONG")
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(line))
	}
	want := []string{"a", "TOO LONG", "b", "TOO LONG", "last"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q, want %q", got, want)
	}
	if !strings.Contains(ErrLineTooLong.Error(), "67108864") {
		t.Errorf("the error should name the limit: %v", ErrLineTooLong)
	}
}

func TestArgsRoundTrip(t *testing.T) {
	args := obj(
		"s", cty.StringVal("x"),
		"n", cty.NumberFloatVal(1.5),
		"l", cty.ListVal([]cty.Value{cty.StringVal("a")}),
		"m", cty.MapVal(map[string]cty.Value{"k": cty.StringVal("v")}),
		"d", cty.NullVal(cty.DynamicPseudoType),
		"o", obj("b", cty.True),
	)
	b, err := EncodeArgs(args)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeArgs(b)
	if err != nil {
		t.Fatal(err)
	}
	if !got.RawEquals(args) {
		t.Errorf("round trip:\n got %#v\nwant %#v", got, args)
	}
	if _, err := EncodeArgs(obj("u", cty.UnknownVal(cty.String))); err == nil {
		t.Error("unknown values must not be sent")
	}
	// A mark means the caller forgot to name a secret: it is refused, never sent as plain.
	if _, err := EncodeArgs(obj("s", cty.StringVal("x").Mark("sensitive"))); err == nil || !strings.Contains(err.Error(), "marks") {
		t.Errorf("marked arguments must be refused, got %v", err)
	}
}

// roundTrip checks that what decodes also re-encodes to something that decodes the same.
func roundTripRequest(t *testing.T, line []byte) {
	req, err := DecodeRequest(line)
	if err != nil {
		return
	}
	b, err := EncodeRequest(req)
	if err != nil {
		t.Fatalf("decoded %q but cannot encode it: %v", line, err)
	}
	req2, err := DecodeRequest(b)
	if err != nil {
		t.Fatalf("re-encoded %q does not decode: %v", b, err)
	}
	b2, _ := EncodeRequest(req2)
	if !bytes.Equal(b, b2) {
		t.Fatalf("unstable encoding:\n%s\n%s", b, b2)
	}
}

func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"id":1,"op":"ping"}`,
		`{"id":2,"op":"check","module":"file","args":{"value":{"path":"/tmp/x","state":"directory"},"type":["object",{"path":"string","state":"string"}]},"timeout_ms":1000}`,
		`{"id":3,"op":"apply","module":"copy","args":{"value":{"content":"x"},"type":["object",{"content":"string"}]},"sensitive":["content"]}`,
		`{"id":4,"op":"cancel"}`,
		`{"id":5,"op":"facts"}`,
		`{"id":6,"op":"check","module":"x","args":{"value":[1,"a"],"type":["tuple",["number","string"]]}}`,
		`{"id":7,"op":"check","module":"x","args":{"value":null,"type":"dynamic"}}`,
		`{"id":1,"op":"ping"} {}`,
		`{"id":-1}`, `[]`, `null`, `"`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) { roundTripRequest(t, line) })
}

func FuzzDecodeResponse(f *testing.F) {
	for _, s := range []string{
		`{"id":1,"status":"ok","duration_ms":3}`,
		`{"id":2,"status":"changed","diff":{"before":"a\n","after":"b\n","before_header":"/etc/x (before)"},"data":{"rc":0,"stdout":"hi"},"msg":"m","warnings":["w"],"reboot_required":true,"duration_ms":1}`,
		`{"id":3,"status":"failed","error":{"message":"exit status 1","stderr":"boom"},"duration_ms":1}`,
		`{"id":4,"status":"failed","duration_ms":1}`,
		`{"id":5,"status":"ok","data":[1]}`,
		`{"id":6,"status":"drift","data":null}`,
		`{}`, `{"id":1e400}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := DecodeResponse(line)
		if err != nil {
			return
		}
		b, err := EncodeResponse(r)
		if err != nil {
			t.Fatalf("decoded %q but cannot encode it: %v", line, err)
		}
		r2, err := DecodeResponse(b)
		if err != nil {
			t.Fatalf("re-encoded %q does not decode: %v", b, err)
		}
		b2, _ := EncodeResponse(r2)
		if !bytes.Equal(b, b2) {
			t.Fatalf("unstable encoding:\n%s\n%s", b, b2)
		}
		_, _ = r.DataValue(nil)
		var anyv any
		if json.Unmarshal(b, &anyv) != nil {
			t.Fatal("encoded response is not JSON")
		}
	})
}

// TestFactsOp: the facts op answers the facts module's data over the base facts, and a facts
// module that fails fails the op with its reason (not half the facts).
func TestFactsOp(t *testing.T) {
	gather := func(res *modules.Result, err error) mapRegistry {
		return mapRegistry{"facts": testModule{info: modules.Info{Name: "facts"}, run: func(context.Context, *modules.Env, cty.Value, bool) (*modules.Result, error) {
			return res, err
		}}}
	}
	tests := []struct {
		name    string
		reg     mapRegistry
		wantOS  any // facts["os"]
		wantErr string
	}{
		{name: "no facts module", reg: mapRegistry{}, wantOS: runtime.GOOS},
		{name: "module data over base facts", reg: gather(&modules.Result{Status: modules.StatusOK, Data: map[string]any{"os": map[string]any{"id": "debian"}}}, nil),
			wantOS: map[string]any{"id": "debian"}},
		{name: "module fails", reg: gather(nil, errors.New("read /sys/class/net: permission denied")), wantErr: "facts: read /sys/class/net: permission denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := &Server{Registry: tt.reg}
			f, err := srv.facts(context.Background())
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || fmt.Sprint(f["os"]) != fmt.Sprint(tt.wantOS) || f["arch"] != runtime.GOARCH {
				t.Errorf("facts = %v, %v", f, err)
			}
		})
	}
}

// TestChain: the requests of a chain run one after the other in the order they were sent,
// though the helper runs other requests at once; after a failure the chain's later
// requests are not run (ErrNotRun) unless the failed one was tolerated; each one's timeout
// starts when it starts, not while it waits.
func TestChain(t *testing.T) {
	c, _, stop := pair(t, &Server{Registry: testRegistry(), Build: "b"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type step struct {
		module    string
		ms        int64
		tolerated bool
		timeout   int64
		want      modules.Status
	}
	run := func(name string, steps []step) []*Response {
		var waits []func() (*Response, error)
		for _, s := range steps {
			w, err := c.Start(ctx, &Request{Op: OpApply, Module: s.module, Args: obj("ms", cty.NumberIntVal(s.ms), "text", cty.StringVal("x")),
				Chain: name, Tolerated: s.tolerated, TimeoutMS: s.timeout})
			if err != nil {
				t.Fatal(err)
			}
			waits = append(waits, w)
		}
		var out []*Response
		for i, w := range waits {
			r, err := w()
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != steps[i].want {
				t.Errorf("%s step %d (%s): status %s, want %s (%v)", name, i, steps[i].module, r.Status, steps[i].want, r.Error)
			}
			out = append(out, r)
		}
		return out
	}
	// In order: three slow requests of 60 ms take 180 ms or more in a chain.
	start := time.Now()
	run("a", []step{{"slow", 60, false, 0, modules.StatusOK}, {"slow", 60, false, 0, modules.StatusOK}, {"slow", 60, false, 0, modules.StatusOK}})
	if d := time.Since(start); d < 180*time.Millisecond {
		t.Errorf("a chain of 3×60 ms took %s: its requests ran at once", d)
	}
	// A failure stops the chain; the later requests say why.
	rs := run("b", []step{{"echo", 0, false, 0, modules.StatusChanged}, {"fail", 0, false, 0, StatusFailed},
		{"echo", 0, false, 0, StatusFailed}, {"echo", 0, false, 0, StatusFailed}})
	if !rs[2].NotRun || !rs[3].NotRun || rs[1].NotRun || rs[2].Error == nil || rs[2].Error.Msg != ErrNotRun {
		t.Errorf("not run: %+v %+v", rs[2], rs[2].Error)
	}
	// A tolerated failure does not.
	run("c", []step{{"fail", 0, true, 0, StatusFailed}, {"echo", 0, false, 0, modules.StatusChanged}})
	// The second request's 100 ms timeout is not spent waiting 150 ms for the first.
	run("d", []step{{"slow", 150, false, 0, modules.StatusOK}, {"slow", 50, false, 100, modules.StatusOK}})
	// Another chain and unchained requests are not held up by a chain.
	w, _ := c.Start(ctx, &Request{Op: OpApply, Module: "slow", Args: obj("ms", cty.NumberIntVal(300)), Chain: "e"})
	start = time.Now()
	if r, err := c.Call(ctx, &Request{Op: OpApply, Module: "slow", Args: obj("ms", cty.NumberIntVal(10)), Chain: "f"}); err != nil || r.Status != modules.StatusOK {
		t.Fatal(r, err)
	}
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Errorf("chain f waited for chain e: %s", d)
	}
	w()
	// A chain's failure holds though its later requests arrive after everything before
	// them answered (the controller's next line may come late).
	if r, err := c.Call(ctx, &Request{Op: OpApply, Module: "fail", Chain: "g"}); err != nil || r.Status != StatusFailed {
		t.Fatal(r, err)
	}
	time.Sleep(20 * time.Millisecond)
	if r, err := c.Call(ctx, &Request{Op: OpApply, Module: "echo", Args: obj("text", cty.StringVal("x")), Chain: "g"}); err != nil || !r.NotRun {
		t.Errorf("a late request of a failed chain ran: %+v %v", r, err)
	}
	// Only check and apply requests chain.
	if _, err := DecodeRequest([]byte(`{"id":1,"op":"ping","chain":"x"}`)); err == nil {
		t.Error("a chained ping was accepted")
	}
	if err := stop(); err != nil {
		t.Error(err)
	}
}

// writeLog notes each write through it: the lines it held.
type writeLog struct {
	w      io.Writer
	mu     sync.Mutex
	writes [][]string
}

func (l *writeLog) Write(p []byte) (int, error) {
	var ops []string
	for _, line := range strings.Split(strings.TrimSuffix(string(p), "\n"), "\n") {
		var r struct {
			Op, Module string
		}
		_ = json.Unmarshal([]byte(line), &r)
		ops = append(ops, r.Op+" "+r.Module)
	}
	l.mu.Lock()
	l.writes = append(l.writes, ops)
	l.mu.Unlock()
	return l.w.Write(p)
}

func (l *writeLog) take() [][]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.writes
	l.writes = nil
	return w
}

// TestQueue: requests queued leave in one write, in order, with the next Flush or Start or
// the first wait; a queued request whose context ends before it leaves is never sent.
func TestQueue(t *testing.T) {
	log := &writeLog{}
	c, _, stop := pairWith(t, &Server{Registry: testRegistry(), Build: "b"}, func(w io.Writer) io.Writer { log.w = w; return log })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	echo := func(text string) *Request {
		return &Request{Op: OpApply, Module: "echo", Args: obj("text", cty.StringVal(text)), Chain: "q"}
	}
	queue := func(ctx context.Context, texts ...string) []func() (*Response, error) {
		var waits []func() (*Response, error)
		for _, x := range texts {
			w, err := c.Queue(ctx, echo(x))
			if err != nil {
				t.Fatal(err)
			}
			waits = append(waits, w)
		}
		return waits
	}
	answers := func(waits []func() (*Response, error), want ...string) {
		t.Helper()
		for i, w := range waits {
			r, err := w()
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != modules.StatusChanged || !strings.Contains(r.Msg, want[i]) {
				t.Errorf("answer %d: %s %q, want changed with %q", i, r.Status, r.Msg, want[i])
			}
		}
	}
	three := []string{"apply echo", "apply echo", "apply echo"}
	for _, c1 := range []struct {
		name  string
		send  func(waits []func() (*Response, error)) []func() (*Response, error)
		texts []string
		write []string
	}{
		{"Flush", func(ws []func() (*Response, error)) []func() (*Response, error) {
			if err := c.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			return ws
		}, []string{"a", "b", "c"}, three},
		{"Start after", func(ws []func() (*Response, error)) []func() (*Response, error) {
			w, err := c.Start(ctx, echo("c"))
			if err != nil {
				t.Fatal(err)
			}
			return append(ws, w)
		}, []string{"a", "b"}, three},
		{"a wait", func(ws []func() (*Response, error)) []func() (*Response, error) { return ws }, []string{"a", "b"},
			[]string{"apply echo", "apply echo"}},
	} {
		waits := c1.send(queue(ctx, c1.texts...))
		answers(waits, "a", "b", "c")
		if got := log.take(); !reflect.DeepEqual(got, [][]string{c1.write}) {
			t.Errorf("%s: writes %q, want one of %q", c1.name, got, c1.write)
		}
	}

	// Taken back: a queued request whose context ends is not sent, nor a cancel for it.
	qctx, qcancel := context.WithCancel(ctx)
	waits := queue(qctx, "gone")
	qcancel()
	if _, err := waits[0](); !errors.Is(err, context.Canceled) {
		t.Errorf("a queued request cancelled: %v", err)
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := log.take(); len(got) != 0 {
		t.Errorf("a request taken back was written: %q", got)
	}
	answers(queue(ctx, "after"), "after")
	log.take()

	// A queued request whose context ends before a later send writes the queue (its wait
	// not yet called, as when a pipeline stops at an interrupted run) is dropped too.
	qctx, qcancel = context.WithCancel(ctx)
	late := queue(qctx, "late")
	qcancel()
	kept := queue(ctx, "kept")
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	answers(kept, "kept")
	if _, err := late[0](); !errors.Is(err, context.Canceled) {
		t.Errorf("a request whose context ended: %v", err)
	}
	if got := log.take(); !reflect.DeepEqual(got, [][]string{{"apply echo"}}) {
		t.Errorf("writes %q, want only the request whose context goes on, and no cancel", got)
	}
	if err := stop(); err != nil {
		t.Error(err)
	}
}

// TestArgsMemo: equal arguments are encoded once and their wire form reused; other
// arguments are encoded anew, and arguments EncodeArgs refuses stay refused.
func TestArgsMemo(t *testing.T) {
	a := obj("path", cty.StringVal("/etc/motd"), "mode", cty.StringVal("0644"))
	same := obj("mode", cty.StringVal("0644"), "path", cty.StringVal("/etc/motd"))
	other := obj("path", cty.StringVal("/etc/issue"), "mode", cty.StringVal("0644"))
	typed := obj("path", cty.StringVal("/etc/motd"), "mode", cty.NumberIntVal(644))
	var m ArgsMemo
	first, err := m.Encode(a)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		args   cty.Value
		reused bool
		fails  bool
	}{
		{"equal arguments", same, true, false},
		{"another value", other, false, false},
		{"back to the first", a, false, false},
		{"equal again", same, true, false},
		{"another type", typed, false, false},
		{"marked", obj("path", cty.StringVal("x").Mark("sensitive")), false, true},
		{"unknown", obj("path", cty.UnknownVal(cty.String)), false, true},
		{"null", cty.NullVal(cty.DynamicPseudoType), false, false},
		{"null again", cty.NullVal(cty.DynamicPseudoType), true, false},
	} {
		want, wantErr := EncodeArgs(c.args)
		before := m.wire
		got, err := m.Encode(c.args)
		if (err != nil) != c.fails || (err != nil) != (wantErr != nil) {
			t.Errorf("%s: error %v, want failure %v", c.name, err, c.fails)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: %s, want %s", c.name, got, want)
		}
		if reused := len(got) > 0 && len(before) > 0 && &got[0] == &before[0]; len(got) > 0 && reused != c.reused {
			t.Errorf("%s: reused %v, want %v", c.name, reused, c.reused)
		}
		if c.fails && m.args.RawEquals(c.args) {
			t.Errorf("%s: refused arguments were kept", c.name)
		}
	}
	// Large arguments are encoded each time, not kept.
	big := obj("content", cty.StringVal(strings.Repeat("x", maxArgsMemo)))
	for range 2 {
		if b, err := m.Encode(big); err != nil || len(b) <= maxArgsMemo {
			t.Fatalf("large arguments: %d bytes, %v", len(b), err)
		}
		if m.args.RawEquals(big) {
			t.Errorf("large arguments were kept")
		}
	}
	if b, err := (*ArgsMemo)(nil).Encode(a); err != nil || !bytes.Equal(b, first) {
		t.Errorf("a nil memo: %s %v", b, err)
	}
	// Many hosts at once.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			args := a
			if i%2 == 1 {
				args = other
			}
			if _, err := m.Encode(args); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}

// slowErrCtx is an ended context whose first Err after arm is slow: it holds a send between
// taking the queue and deciding what to drop, as a scheduler pausing that goroutine would.
type slowErrCtx struct {
	context.Context
	arm, slept atomic.Bool
}

func (c *slowErrCtx) Err() error {
	if c.arm.Load() && c.slept.CompareAndSwap(false, true) {
		time.Sleep(200 * time.Millisecond)
	}
	return c.Context.Err()
}

// TestQueueDropped: a queued request whose context ended is dropped by the write that takes
// it, also when its wait runs while that write decides, and when its wait is never called:
// no cancel is sent for it, and nothing is kept for it.
func TestQueueDropped(t *testing.T) {
	log := &writeLog{}
	c, _, stop := pairWith(t, &Server{Registry: testRegistry(), Build: "b"}, func(w io.Writer) io.Writer { log.w = w; return log })
	echo := &Request{Op: OpApply, Module: "echo", Args: obj("text", cty.StringVal("x"))}

	base, cancel := context.WithCancel(context.Background())
	sc := &slowErrCtx{Context: base}
	wait, err := c.Queue(sc, echo)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	sc.arm.Store(true)
	flushed := make(chan error, 1)
	go func() { flushed <- c.Flush(context.Background()) }()
	time.Sleep(50 * time.Millisecond) // the flush is inside its decision now
	if _, err := wait(); !errors.Is(err, context.Canceled) {
		t.Errorf("the wait of a request dropped: %v", err)
	}
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}

	// Never waited for: a pipeline that stopped at an interrupted run.
	for range 100 {
		ctx, cancel := context.WithCancel(context.Background())
		if _, err := c.Queue(ctx, echo); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
	if _, err := c.Call(context.Background(), &Request{Op: OpPing}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if got := log.take(); !reflect.DeepEqual(got, [][]string{{"ping "}}) {
		t.Errorf("writes %q, want the ping alone", got)
	}
	c.mu.Lock()
	pending := len(c.pending)
	c.mu.Unlock()
	c.qmu.Lock()
	queued := len(c.queued)
	c.qmu.Unlock()
	if pending != 0 || queued != 0 {
		t.Errorf("%d requests pending and %d queued after the drops", pending, queued)
	}
	if err := stop(); err != nil {
		t.Error(err)
	}
}
