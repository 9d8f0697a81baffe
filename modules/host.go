package modules

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"time"

	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// DiffStatus is the status of a run that found the host not as wanted: StatusChanged when
// it applied the difference, StatusDrift when it only checked.
func DiffStatus(apply bool) Status {
	if apply {
		return StatusChanged
	}
	return StatusDrift
}

// Tense picks a message's wording: what was done when applying, what would be when
// checking ("stopped" or "would stop").
func Tense(apply bool, done, would string) string {
	if apply {
		return done
	}
	return would
}

// DefaultOutputLimit caps each captured output stream (stdout, stderr) of a command. Output
// is registered and travels to the controller in one protocol line, so it must stay small.
const DefaultOutputLimit = 1 << 20

// Env is the host-side context a Runner works in. The helper builds one per request.
type Env struct {
	// OutputLimit caps each captured output stream in bytes; 0 means DefaultOutputLimit.
	OutputLimit int
	// Logger receives debug output; nil discards it. It must never be given argument values
	// that are sensitive.
	Logger *slog.Logger
	// StateDir is a directory the helper owns on the host (markers, caches); may be "".
	StateDir string
	// Now returns the current time; nil means time.Now. Tests set it for stable backup names.
	Now func() time.Time
	// TxnDir is where a change that runs as a transaction keeps its journal (modules/txn);
	// "" when the helper has none (it does not run as root).
	TxnDir string
	// ConfirmTimeout is the run's time for a transaction's confirmation (--confirm-timeout):
	// 0 means the default, negative means none (changes run without a transaction).
	ConfirmTimeout time.Duration
	// TxnID is the id the controller chose for a transaction this apply begins (modules/txn):
	// it asks by that id how the transaction ended when the apply's answer is lost. "" lets
	// the helper choose.
	TxnID string
	// sensitive names the top-level arguments whose values must never be shown.
	sensitive map[string]bool
	// redactor hides the values of those arguments; nil when there are none.
	redactor *Redactor
}

// NewEnv returns an Env for one run of a module: the arguments the module's schema marks
// Sensitive plus extra (arguments whose values came from sensitive variables) are secret.
func NewEnv(info Info, extra []string) *Env {
	env := &Env{sensitive: map[string]bool{}}
	for _, a := range info.Schema.Args {
		if a.Sensitive {
			env.sensitive[a.Name] = true
		}
	}
	for _, n := range extra {
		env.sensitive[n] = true
	}
	return env
}

// Sensitive reports whether the value of the named argument must never be shown, in a diff,
// a message, or a log.
func (e *Env) Sensitive(arg string) bool { return e != nil && e.sensitive[arg] }

// SensitiveArgs returns the names of the sensitive arguments, sorted.
func (e *Env) SensitiveArgs() []string {
	if e == nil {
		return nil
	}
	out := make([]string, 0, len(e.sensitive))
	for n := range e.sensitive {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// SetSecrets gives the Env the values of the sensitive arguments (SecretStrings of the
// arguments and SensitiveArgs), so that what a module shows while it runs (a command line,
// captured output) is redacted before it is cut.
func (e *Env) SetSecrets(secrets []string) { e.redactor = NewRedactor(secrets) }

// Redactor returns the Redactor of the secrets given to SetSecrets; nil (which redacts
// nothing) when there are none.
func (e *Env) Redactor() *Redactor {
	if e == nil {
		return nil
	}
	return e.redactor
}

// Limit returns the output cap in bytes.
func (e *Env) Limit() int {
	if e == nil || e.OutputLimit <= 0 {
		return DefaultOutputLimit
	}
	return e.OutputLimit
}

// Log returns the logger, never nil.
func (e *Env) Log() *slog.Logger {
	if e == nil || e.Logger == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return e.Logger
}

// Time returns the current time.
func (e *Env) Time() time.Time {
	if e == nil || e.Now == nil {
		return time.Now()
	}
	return e.Now()
}

// ControllerOnly is implemented by modules that run entirely on the controller and never
// reach a host, such as assert. Their code is the engine's (engine/controller), which the
// helper does not link; a helper asked to run one refuses it.
type ControllerOnly interface {
	Module
	RunsOnController()
}

// Result is what one run of a module reports.
type Result struct {
	// Status is one of StatusOK, StatusChanged, StatusDrift, StatusUnknown.
	Status Status
	// Diff shows what changed (apply) or would change (check); nil when there is nothing to
	// show.
	Diff *Diff
	// Data holds the registered values: on the host, the module's result struct (the R it
	// was registered with; one field per Returns entry). On the controller, after the
	// protocol, it is a cty object value with one attribute per Returns entry, each of its
	// declared type.
	Data any
	// Msg is one line for people.
	Msg      string
	Warnings []string
	// RebootRequired says the change takes full effect only after a reboot.
	RebootRequired bool
	// Transaction is the transaction the change ran in (network modules): pending when the
	// helper answers, confirmed or rolled back once the controller has asked again.
	Transaction *Transaction
}

// Diff is a before/after pair that the controller renders as a unified diff. Headers name
// the two sides (usually the path, with "(before)" / "(after)" or /dev/null).
type Diff struct {
	Before       string `json:"before"`
	After        string `json:"after"`
	BeforeHeader string `json:"before_header,omitempty"`
	AfterHeader  string `json:"after_header,omitempty"`
}

// Failure is an error with the output that explains it, such as a command's stderr; the
// protocol sends Stderr beside the message.
type Failure struct {
	Msg string `json:"message"`
	// Stderr is the output that explains the failure, e.g. a failing command's stderr.
	Stderr string `json:"stderr,omitempty"`
}

func (f *Failure) Error() string { return f.Msg }

// ObjectType is the type of the value a module body decodes to: one attribute per argument.
func (s Schema) ObjectType() cty.Type {
	attrs := make(map[string]cty.Type, len(s.Args))
	for _, a := range s.Args {
		attrs[a.Name] = a.Type
	}
	return cty.Object(attrs)
}

// Normalize turns arguments received over the wire into exactly the value Decode would have
// produced: every argument present (absent ones get their default or null), each converted
// to its declared type. An attribute the schema does not know is an error, so host code can
// rely on GetAttr without guarding against a malformed request.
func (s Schema) Normalize(args cty.Value) (cty.Value, error) {
	if args.IsNull() {
		args = cty.EmptyObjectVal
	}
	if !args.IsWhollyKnown() {
		return cty.NilVal, errors.New("arguments contain unknown values")
	}
	ty := args.Type()
	if !ty.IsObjectType() && !ty.IsMapType() {
		return cty.NilVal, fmt.Errorf("arguments must be an object, not %s", ty.FriendlyName())
	}
	given := map[string]cty.Value{}
	for it := args.ElementIterator(); it.Next(); {
		k, v := it.Element()
		given[k.AsString()] = v
	}
	out := make(map[string]cty.Value, len(s.Args))
	for _, a := range s.Args {
		v, ok := given[a.Name]
		delete(given, a.Name)
		if !ok || v.IsNull() {
			switch {
			case a.Default != cty.NilVal:
				v = a.Default
			case a.Required:
				return cty.NilVal, fmt.Errorf("argument %q is required", a.Name)
			default:
				v = cty.NullVal(a.Type)
			}
		}
		if a.Type != cty.DynamicPseudoType {
			cv, err := convert.Convert(v, a.Type)
			if err != nil {
				return cty.NilVal, fmt.Errorf("argument %q: %w", a.Name, err)
			}
			v = cv
		}
		out[a.Name] = v
	}
	if len(given) > 0 {
		names := make([]string, 0, len(given))
		for n := range given {
			names = append(names, n)
		}
		sort.Strings(names)
		return cty.NilVal, fmt.Errorf("unsupported argument %q", names[0])
	}
	return cty.ObjectVal(out), nil
}
