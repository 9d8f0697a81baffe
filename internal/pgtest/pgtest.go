// Package pgtest gives tests a real PostgreSQL server: started on first use (initdb into a
// temporary directory, as the postgres OS user when run as root: initdb refuses root), on
// 127.0.0.1 with a free port, each test a new empty database. Call Stop from TestMain.
// Without PostgreSQL installed the tests that ask for it skip, unless CI=true: CI installs
// it, so its absence there is a failure.
package pgtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The server, started on first use and stopped by Stop:
// initdb into a temporary directory as the postgres OS user (initdb refuses root), then
// the server on 127.0.0.1 with a free port, stopped by its PID.
var pg struct {
	once  sync.Once
	err   error // why there is no server
	skip  bool  // err means "not installed", not "broken"
	cmd   *exec.Cmd
	dir   string
	admin string // URL of the postgres database
	n     atomic.Int32
}

// postgresBin finds the newest installed PostgreSQL's bin directory (Debian keeps them in
// /usr/lib/postgresql/VERSION/bin).
func postgresBin() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p)
	}
	return ""
}

func startPostgres() {
	bin := postgresBin()
	if bin == "" {
		pg.err, pg.skip = fmt.Errorf("no PostgreSQL server binaries (initdb, postgres)"), true
		return
	}
	var cred *syscall.Credential
	var uid, gid int = -1, -1
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			pg.err = fmt.Errorf("running as root and there is no postgres user to run the server as: %v", err)
			return
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	dir, err := os.MkdirTemp("", "runbook-history-pg-")
	if err != nil {
		pg.err = err
		return
	}
	pg.dir = dir
	if uid >= 0 {
		if err := os.Chown(dir, uid, gid); err != nil {
			pg.err = err
			return
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
		"--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		pg.err = fmt.Errorf("initdb: %v\n%s", err, out)
		return
	}
	port, err := freePort()
	if err != nil {
		pg.err = err
		return
	}
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		pg.err = err
		return
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(port), "-k", dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
		"-c", "full_page_writes=off", "-c", "max_connections=40", "-c", "shared_buffers=16MB")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		pg.err = fmt.Errorf("start postgres: %v", err)
		return
	}
	pg.cmd = cmd
	pg.admin = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := pgx.Connect(ctx, pg.admin)
		if err == nil {
			c.Close(ctx)
			cancel()
			return
		}
		cancel()
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
			pg.err = fmt.Errorf("postgres did not accept connections within 30s: %v\n%s", err, log)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Stop stops the server, if one was started, and removes its files.
func Stop() {
	if pg.cmd != nil && pg.cmd.Process != nil {
		// SIGINT is PostgreSQL's fast shutdown: sessions are ended, nothing is waited for.
		_ = pg.cmd.Process.Signal(syscall.SIGINT)
		done := make(chan struct{})
		go func() { _ = pg.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = pg.cmd.Process.Kill()
			<-done
		}
	}
	if pg.dir != "" {
		os.RemoveAll(pg.dir)
	}
}

// URL returns the URL of a new, empty database on the test server. Without PostgreSQL
// installed the test is skipped, unless CI=true: CI installs it, so its absence there is a
// failure.
func URL(t testing.TB) string {
	t.Helper()
	pg.once.Do(startPostgres)
	if pg.err != nil {
		if pg.skip && os.Getenv("CI") != "true" {
			t.Skipf("skipping PostgreSQL: %v", pg.err)
		}
		t.Fatalf("PostgreSQL: %v", pg.err)
	}
	name := fmt.Sprintf("runbook_test_%d", pg.n.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, pg.admin)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	u := pg.admin[:len(pg.admin)-len("postgres?sslmode=disable")] + name + "?sslmode=disable"
	return u
}
