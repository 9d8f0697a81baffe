package network

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/host"
	"github.com/runbook/runbook/modules/moduletest"
	"github.com/runbook/runbook/modules/txn"
)

// fakeRestorer restores the network part of a journal on the fake kernel.
type fakeRestorer struct {
	k *fakeKernel
	f *fileTree
}

func (r fakeRestorer) Restore(raw json.RawMessage) ([]string, error) {
	var s runtimeSnap
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, err
	}
	ops, done, _ := r.k.opener()()
	defer done()
	return s.restore(ops, r.f)
}

func (r fakeRestorer) Verify(raw json.RawMessage) ([]string, error) {
	var s runtimeSnap
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, err
	}
	ops, done, _ := r.k.opener()()
	defer done()
	return s.verify(ops, r.f)
}

// testTxn is a transaction manager on the fake kernel, armed by hand.
func testTxn(t *testing.T, k *fakeKernel, root host.Root) (*txn.Manager, *int) {
	armed := 0
	return &txn.Manager{Dir: filepath.Join(t.TempDir(), "txn"),
		Arm:       func(*txn.Manager, *txn.Journal) (txn.Arm, error) { armed++; return txn.Arm{How: "none"}, nil },
		Disarm:    func(*txn.Manager, *txn.Journal) error { return nil },
		Restorers: map[string]txn.Restorer{txnRestorer: fakeRestorer{k, &fileTree{root}}}}, &armed
}

// TestInterfaceTransaction: an apply that changes the kernel and a file runs in a
// transaction (pending in the result, the journal holding the link and the file as they
// were); rolling it back restores both; check mode arms nothing; confirm_timeout "0" and the
// run's --confirm-timeout 0 make the change without one; a change that fails half way is
// rolled back at once.
func TestInterfaceTransaction(t *testing.T) {
	setup := func(t *testing.T) (*fakeKernel, host.Root, *txn.Manager, *int, Interface) {
		k := newFakeKernel()
		k.add(&fakeLink{name: "ens1f0", up: true, mtu: 1500, addrs: []string{"192.0.2.10/24"}})
		root := host.Root(t.TempDir())
		mgr, armed := testTxn(t, k, root)
		return k, root, mgr, armed, Interface{root: root, open: k.opener(), txn: mgr}
	}
	args := map[string]cty.Value{"name": s("ens1f0"), "mtu": n(9000), "state": s("down"), "backend": s("ifupdown"),
		"confirm_timeout": s("30s")}
	conf := "/etc/network/interfaces"
	write := func(t *testing.T, root host.Root, text string) {
		if err := os.MkdirAll(filepath.Dir(root.Path(conf)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(root.Path(conf), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const orig = "auto lo\niface lo inet loopback\n"

	t.Run("apply, then roll back", func(t *testing.T) {
		k, root, mgr, armed, m := setup(t)
		write(t, root, orig)
		res, err := moduletest.Run(t, m, args, false)
		if err != nil || res.Status != modules.StatusDrift || res.Transaction != nil || *armed != 0 {
			t.Fatalf("check: %v %+v armed %d", err, res, *armed)
		}
		res, err = moduletest.Run(t, m, args, true)
		if err != nil || res.Status != modules.StatusChanged {
			t.Fatalf("apply: %v %+v", err, res)
		}
		tx := res.Transaction
		if tx == nil || tx.State != modules.TxnPending || tx.WithinMS <= 0 || tx.WithinMS > 30000 || *armed != 1 {
			t.Fatalf("transaction %+v, armed %d", tx, *armed)
		}
		if b, _ := os.ReadFile(root.Path(conf)); string(b) == orig {
			t.Fatal("the file was not written")
		}
		if l := k.byName("ens1f0"); l.up || l.mtu != 9000 {
			t.Fatalf("not applied: %+v", l)
		}
		o, err := mgr.Rollback(tx.ID, "test")
		if err != nil || o.State != modules.TxnRolledBack || !o.Verified {
			t.Fatalf("rollback: %+v %v", o, err)
		}
		if b, _ := os.ReadFile(root.Path(conf)); string(b) != orig {
			t.Errorf("file after the rollback: %q", b)
		}
		if l := k.byName("ens1f0"); !l.up || l.mtu != 1500 || strings.Join(l.addrs, " ") != "192.0.2.10/24" {
			t.Errorf("link after the rollback: %+v", l)
		}
		// The host is as before: a check finds the same drift again.
		if res, err := moduletest.Run(t, m, args, false); err != nil || res.Status != modules.StatusDrift {
			t.Errorf("check after the rollback: %v %+v", err, res)
		}
	})

	t.Run("no transaction when turned off", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			args map[string]cty.Value
			env  func(*modules.Env)
		}{
			{"task", with(args, "confirm_timeout", s("0")), nil},
			{"run", with(args, "confirm_timeout", cty.NullVal(cty.String)), func(e *modules.Env) { e.ConfirmTimeout = -1 }},
		} {
			_, root, _, armed, m := setup(t)
			write(t, root, orig)
			var opts []moduletest.Option
			if tc.env != nil {
				opts = append(opts, moduletest.WithEnv(tc.env))
			}
			res, err := moduletest.Run(t, m, tc.args, true, opts...)
			if err != nil || res.Status != modules.StatusChanged || res.Transaction != nil || *armed != 0 {
				t.Errorf("%s: %v %+v armed %d", tc.name, err, res, *armed)
			}
		}
	})

	t.Run("the run's time applies when the task gives none", func(t *testing.T) {
		_, root, _, _, m := setup(t)
		write(t, root, orig)
		res, err := moduletest.Run(t, m, with(args, "confirm_timeout", cty.NullVal(cty.String)), true,
			moduletest.WithEnv(func(e *modules.Env) { e.ConfirmTimeout = 90 * time.Second }))
		if err != nil || res.Transaction == nil || res.Transaction.WithinMS <= 60000 {
			t.Fatalf("%v %+v", err, res.Transaction)
		}
	})

	t.Run("a change that fails half way is rolled back at once", func(t *testing.T) {
		k, root, _, _, m := setup(t)
		write(t, root, orig)
		k.failOnCall = "mtu ens1f0" // the link goes down first, then this fails
		_, err := moduletest.Run(t, m, with(args, "backend", s("none")), true)
		if err == nil || !strings.Contains(err.Error(), "rolled back what it had changed") || !strings.Contains(err.Error(), "ens1f0: down → up") {
			t.Fatalf("err %v", err)
		}
		k.failOnCall = ""
		if l := k.byName("ens1f0"); l.mtu != 1500 || !l.up {
			t.Errorf("link after the failed change: %+v", l)
		}
	})

	t.Run("one at a time", func(t *testing.T) {
		_, root, _, _, m := setup(t)
		write(t, root, orig)
		if _, err := moduletest.Run(t, m, args, true); err != nil {
			t.Fatal(err)
		}
		_, err := moduletest.Run(t, m, with(args, "mtu", n(4000)), true)
		if err == nil || !strings.Contains(err.Error(), "another transaction is pending on this host") {
			t.Fatalf("a second transaction began: %v", err)
		}
	})

	t.Run("confirm_timeout is checked before any host is touched", func(t *testing.T) {
		for _, v := range []string{"soon", "500ms", "48h", "-1s"} {
			errs := moduletest.Validate(t, Interface{}, map[string]cty.Value{"name": s("eth0"), "mtu": n(9000), "confirm_timeout": s(v)})
			if len(errs) == 0 {
				t.Errorf("confirm_timeout %q accepted", v)
			}
		}
	})
}
