package history

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgConnector adapts one pgx connection per database/sql connection, so the PostgreSQL
// backend shares the store's database/sql code with SQLite. It needs only the core pgx
// package: the store does plain statements with positional arguments and reads back
// integers, text, booleans and timestamps.
type pgConnector struct{ dsn string }

func (c pgConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := pgx.Connect(ctx, c.dsn)
	if err != nil {
		return nil, err
	}
	return &pgConn{c: conn}, nil
}

func (c pgConnector) Driver() driver.Driver { return pgDriver{} }

type pgDriver struct{}

func (pgDriver) Open(dsn string) (driver.Conn, error) {
	return pgConnector{dsn: dsn}.Connect(context.Background())
}

type pgConn struct{ c *pgx.Conn }

var (
	_ driver.ExecerContext      = (*pgConn)(nil)
	_ driver.QueryerContext     = (*pgConn)(nil)
	_ driver.ConnBeginTx        = (*pgConn)(nil)
	_ driver.Pinger             = (*pgConn)(nil)
	_ driver.NamedValueChecker  = (*pgConn)(nil)
	_ driver.SessionResetter    = (*pgConn)(nil)
	_ driver.ConnPrepareContext = (*pgConn)(nil)
)

func (p *pgConn) Prepare(query string) (driver.Stmt, error) {
	return p.PrepareContext(context.Background(), query)
}

// PrepareContext returns a statement that runs the query text each time; pgx caches the
// server-side prepared statement per query text on its own.
func (p *pgConn) PrepareContext(_ context.Context, query string) (driver.Stmt, error) {
	return &pgStmt{conn: p, query: query}, nil
}

func (p *pgConn) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return p.c.Close(ctx)
}

func (p *pgConn) Begin() (driver.Tx, error) {
	return p.BeginTx(context.Background(), driver.TxOptions{})
}

func (p *pgConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	stmt := "BEGIN"
	switch sql.IsolationLevel(opts.Isolation) {
	case sql.LevelDefault:
	case sql.LevelSerializable:
		stmt += " ISOLATION LEVEL SERIALIZABLE"
	case sql.LevelRepeatableRead:
		stmt += " ISOLATION LEVEL REPEATABLE READ"
	case sql.LevelReadCommitted:
		stmt += " ISOLATION LEVEL READ COMMITTED"
	default:
		return nil, fmt.Errorf("isolation level %d is not supported", opts.Isolation)
	}
	if opts.ReadOnly {
		stmt += " READ ONLY"
	}
	if _, err := p.c.Exec(ctx, stmt); err != nil {
		return nil, err
	}
	return pgTx{p}, nil
}

func (p *pgConn) Ping(ctx context.Context) error {
	if p.c.IsClosed() {
		return driver.ErrBadConn
	}
	return p.c.Ping(ctx)
}

func (p *pgConn) ResetSession(context.Context) error {
	if p.c.IsClosed() {
		return driver.ErrBadConn
	}
	return nil
}

// CheckNamedValue passes every argument through: pgx encodes Go values itself.
func (p *pgConn) CheckNamedValue(*driver.NamedValue) error { return nil }

func args(named []driver.NamedValue) []any {
	out := make([]any, len(named))
	for i, n := range named {
		out[i] = n.Value
	}
	return out
}

func (p *pgConn) ExecContext(ctx context.Context, query string, named []driver.NamedValue) (driver.Result, error) {
	tag, err := p.c.Exec(ctx, query, args(named)...)
	if err != nil {
		return nil, err
	}
	return driver.RowsAffected(tag.RowsAffected()), nil
}

func (p *pgConn) QueryContext(ctx context.Context, query string, named []driver.NamedValue) (driver.Rows, error) {
	rows, err := p.c.Query(ctx, query, args(named)...)
	if err != nil {
		return nil, err
	}
	return &pgRows{r: rows}, nil
}

type pgTx struct{ p *pgConn }

func (t pgTx) Commit() error {
	_, err := t.p.c.Exec(context.Background(), "COMMIT")
	return err
}

func (t pgTx) Rollback() error {
	if t.p.c.IsClosed() {
		return nil
	}
	_, err := t.p.c.Exec(context.Background(), "ROLLBACK")
	return err
}

type pgStmt struct {
	conn  *pgConn
	query string
}

func (s *pgStmt) Close() error  { return nil }
func (s *pgStmt) NumInput() int { return -1 }

func (s *pgStmt) Exec(a []driver.Value) (driver.Result, error) {
	return s.conn.ExecContext(context.Background(), s.query, toNamed(a))
}

func (s *pgStmt) Query(a []driver.Value) (driver.Rows, error) {
	return s.conn.QueryContext(context.Background(), s.query, toNamed(a))
}

func (s *pgStmt) ExecContext(ctx context.Context, a []driver.NamedValue) (driver.Result, error) {
	return s.conn.ExecContext(ctx, s.query, a)
}

func (s *pgStmt) QueryContext(ctx context.Context, a []driver.NamedValue) (driver.Rows, error) {
	return s.conn.QueryContext(ctx, s.query, a)
}

func toNamed(a []driver.Value) []driver.NamedValue {
	out := make([]driver.NamedValue, len(a))
	for i, v := range a {
		out[i] = driver.NamedValue{Ordinal: i + 1, Value: v}
	}
	return out
}

type pgRows struct {
	r    pgx.Rows
	cols []string
}

func (r *pgRows) Columns() []string {
	if r.cols == nil {
		for _, fd := range r.r.FieldDescriptions() {
			r.cols = append(r.cols, fd.Name)
		}
	}
	return r.cols
}

func (r *pgRows) Close() error {
	r.r.Close()
	return r.r.Err()
}

func (r *pgRows) Next(dest []driver.Value) error {
	if !r.r.Next() {
		if err := r.r.Err(); err != nil {
			return err
		}
		return io.EOF
	}
	vals, err := r.r.Values()
	if err != nil {
		return err
	}
	if len(vals) != len(dest) {
		return errors.New("postgres: column count changed")
	}
	for i, v := range vals {
		switch x := v.(type) {
		case int16:
			dest[i] = int64(x)
		case int32:
			dest[i] = int64(x)
		case int:
			dest[i] = int64(x)
		case float32:
			dest[i] = float64(x)
		case nil, int64, float64, bool, []byte, string, time.Time:
			dest[i] = x
		default:
			dest[i] = fmt.Sprint(x)
		}
	}
	return nil
}
