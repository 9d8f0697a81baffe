package protocol

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Client is the controller's end of one helper's conversation. Its methods are safe for
// concurrent use; responses are matched to calls by id, so several calls can be in flight.
type Client struct {
	w     io.Writer
	wmu   sync.Mutex // held while writing, and while taking the queue to write it
	hello Hello

	qmu    sync.Mutex
	queued []queuedLine // requests Queue held back: written before the next line

	mu      sync.Mutex
	pending map[uint64]chan *Response
	nextID  uint64
	err     error // why the conversation ended; set once, before done is closed
	done    chan struct{}

	orphans chan *Response
}

// queuedLine is a request's line that Queue held back, with the request's context: a line
// whose context has ended by the time it would be written is dropped, never sent late, and
// dropped says so to its wait (set under qmu, in the step that takes the queue).
type queuedLine struct {
	id      uint64
	line    []byte
	ctx     context.Context
	dropped *atomic.Bool
}

// ErrNoHello is NewClient's error when the helper's output ended before its hello: it exited
// (or is exiting) without starting; its exit status says why.
var ErrNoHello = errors.New("the helper exited before saying hello")

// NewClient reads the helper's hello from r and checks its protocol version; then it reads
// responses in the background until r ends. ctx bounds only the wait for the hello. When
// NewClient fails, or when the caller is done with the client, the caller closes the
// transport (the ssh session), which ends the background reader.
func NewClient(ctx context.Context, r io.Reader, w io.Writer) (*Client, error) {
	c := &Client{w: w, pending: map[uint64]chan *Response{}, done: make(chan struct{}), orphans: make(chan *Response, 16)}
	// A helper that writes a line over the limit is broken (its own responses stay under
	// it): the conversation ends at the limit, so an endless line fails the calls in flight
	// instead of keeping them waiting while the controller reads and drops it forever.
	lr := newLineReader(r, MaxLine)
	lr.stop = true
	type helloResult struct {
		h   *Hello
		err error
	}
	hc := make(chan helloResult, 1)
	go func() {
		line, err := lr.next()
		if err != nil {
			if err == io.EOF {
				err = ErrNoHello
			}
			hc <- helloResult{nil, fmt.Errorf("read hello: %w", err)}
			return
		}
		h, err := DecodeHello(line)
		hc <- helloResult{h, err}
		if err != nil {
			return
		}
		c.readLoop(lr)
	}()
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for the helper's hello: %w", ctx.Err())
	case hr := <-hc:
		if hr.err != nil {
			return nil, hr.err
		}
		c.hello = *hr.h
		return c, nil
	}
}

// Hello returns what the helper said first.
func (c *Client) Hello() Hello { return c.hello }

// Done is closed when the conversation has ended (the helper exited or broke the protocol);
// Err then says why.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns why the conversation ended, or nil while it goes on.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Orphans delivers responses that answer no call in flight: late answers to cancelled
// calls, and the helper's answers to lines it could not parse (id 0). When nobody reads
// them, they are dropped.
func (c *Client) Orphans() <-chan *Response { return c.orphans }

func (c *Client) readLoop(lr *lineReader) {
	for {
		line, err := lr.next()
		if err != nil {
			if err == io.EOF {
				err = errors.New("the helper exited")
			} else {
				err = fmt.Errorf("read from the helper: %w", err)
			}
			c.fail(err)
			return
		}
		if len(line) == 0 {
			continue
		}
		resp, err := DecodeResponse(line)
		if err != nil {
			// A helper that writes garbage cannot be trusted with the next answer either.
			c.fail(fmt.Errorf("the helper broke the protocol: %w", err))
			return
		}
		c.mu.Lock()
		ch, ok := c.pending[resp.ID]
		delete(c.pending, resp.ID)
		c.mu.Unlock()
		if ok {
			ch <- resp // buffered: never blocks
			continue
		}
		select {
		case c.orphans <- resp:
		default:
		}
	}
}

func (c *Client) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	c.err = err
	close(c.done)
}

// Call sends req and waits for its response. A zero req.ID is replaced with a fresh one.
// With no TimeoutMS, the helper is given ctx's deadline. When ctx ends first, Call tells
// the helper to cancel the request and returns ctx's error. A module's failure is not an
// error of Call: it is a response with status "failed" (see Response.Err).
func (c *Client) Call(ctx context.Context, req *Request) (*Response, error) {
	wait, err := c.Start(ctx, req)
	if err != nil {
		return nil, err
	}
	return wait()
}

// Start sends req and returns a function that waits for its response, as Call does: the
// request is written before Start returns, so requests started one after the other reach
// the helper in that order (a chain's order, Request.Chain). wait must be called, with ctx
// still the request's.
func (c *Client) Start(ctx context.Context, req *Request) (wait func() (*Response, error), err error) {
	return c.start(ctx, req, false)
}

// Queue is Start that holds the request back: it is written, after any held before it, by
// the next Flush or Start, or by a wait (of any of them) that finds it still held. A
// pipeline's requests queued and then flushed leave in one write, one SSH packet, rather
// than one each. A request whose ctx ends while it is still held is never sent: its wait
// takes it back, or the write that would carry it drops it. Queue a chain's requests with
// one ctx: with several, a middle one could be dropped while later ones are sent.
func (c *Client) Queue(ctx context.Context, req *Request) (wait func() (*Response, error), err error) {
	return c.start(ctx, req, true)
}

// Flush writes the requests Queue held back, in one write.
func (c *Client) Flush(ctx context.Context) error {
	return c.send(ctx, nil)
}

func (c *Client) start(ctx context.Context, req *Request, hold bool) (wait func() (*Response, error), err error) {
	r := *req
	if r.Op == OpCancel {
		return nil, errors.New("cancel a call by ending its context, not with a cancel request")
	}
	ch := make(chan *Response, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
	if r.ID == 0 {
		for {
			c.nextID++
			if _, busy := c.pending[c.nextID]; !busy && c.nextID != 0 {
				break
			}
		}
		r.ID = c.nextID
	} else if _, busy := c.pending[r.ID]; busy {
		c.mu.Unlock()
		return nil, fmt.Errorf("request id %d is already in flight", r.ID)
	}
	c.pending[r.ID] = ch
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		delete(c.pending, r.ID)
		c.mu.Unlock()
	}

	if r.TimeoutMS == 0 {
		if dl, ok := ctx.Deadline(); ok {
			r.TimeoutMS = max(time.Until(dl).Milliseconds(), 1)
		}
	}
	line, err := EncodeRequest(&r)
	if err != nil {
		forget()
		return nil, fmt.Errorf("%s %s: %w", r.Op, r.Module, err)
	}
	dropped := new(atomic.Bool)
	if hold {
		c.qmu.Lock()
		c.queued = append(c.queued, queuedLine{r.ID, line, ctx, dropped})
		c.qmu.Unlock()
	} else if err := c.send(ctx, line); err != nil {
		forget()
		return nil, fmt.Errorf("%s %s: %w", r.Op, r.Module, err)
	}
	return func() (*Response, error) {
		if hold && ctx.Err() == nil {
			if err := c.send(ctx, nil); err != nil && ctx.Err() == nil {
				forget()
				return nil, fmt.Errorf("%s %s: %w", r.Op, r.Module, err)
			}
		}
		select {
		case resp := <-ch:
			return resp, nil
		case <-c.done:
			forget()
			return nil, fmt.Errorf("%s %s: %w", r.Op, r.Module, c.Err())
		case <-ctx.Done():
			forget()
			if hold && c.unqueue(r.ID, dropped) {
				return nil, fmt.Errorf("%s %s: %w", r.Op, r.Module, ctx.Err()) // never sent
			}
			// Best effort, with its own short deadline: the helper stops the module, and its
			// late answer goes to Orphans.
			cctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if b, err := EncodeRequest(&Request{ID: r.ID, Op: OpCancel}); err == nil {
				_ = c.send(cctx, b)
			}
			return nil, fmt.Errorf("%s %s: %w", r.Op, r.Module, ctx.Err())
		}
	}, nil
}

// unqueue takes request id back if it is still held, and says whether it was never sent:
// still held, or dropped unsent by a send (dropped, the request's own flag). Both are
// decided under qmu, so a request is exactly one of held, dropped, or on its way.
func (c *Client) unqueue(id uint64, dropped *atomic.Bool) bool {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if dropped.Load() {
		return true
	}
	for i, q := range c.queued {
		if q.id == id {
			c.queued = append(c.queued[:i], c.queued[i+1:]...)
			return true
		}
	}
	return false
}

// send writes the requests held back (Queue), then line (none: only those), in one write.
// A write to a helper that stopped reading would block forever, so it happens in a
// goroutine raced against ctx; after such a timeout the conversation is over, as a
// half-written line cannot be taken back. The held lines are taken while the write lock is
// held, so every line is written once, in the order queued; those whose context has ended
// are dropped.
func (c *Client) send(ctx context.Context, line []byte) error {
	if err := ctx.Err(); err != nil {
		return err // nothing written yet: the conversation is intact
	}
	if line == nil {
		c.qmu.Lock()
		none := len(c.queued) == 0
		c.qmu.Unlock()
		if none {
			return nil // nothing held, or a send under way took it
		}
	}
	errc := make(chan error, 1)
	go func() {
		c.wmu.Lock()
		defer c.wmu.Unlock()
		// Take the queue and decide, in one step, which lines go and which are dropped
		// (their context ended: their waits return its error and send no cancel).
		c.qmu.Lock()
		held := c.queued[:0:0]
		var gone []uint64
		for _, q := range c.queued {
			if q.ctx.Err() != nil {
				q.dropped.Store(true)
				gone = append(gone, q.id)
				continue
			}
			held = append(held, q)
		}
		c.queued = nil
		c.qmu.Unlock()
		if len(gone) > 0 {
			c.mu.Lock()
			for _, id := range gone {
				delete(c.pending, id) // no answer will come; a wait may never be called
			}
			c.mu.Unlock()
		}
		buf := line
		if len(held) > 0 {
			n := len(line)
			for _, q := range held {
				n += len(q.line)
			}
			buf = make([]byte, 0, n)
			for _, q := range held {
				buf = append(buf, q.line...)
			}
			buf = append(buf, line...)
		}
		if len(buf) == 0 {
			errc <- c.Err() // written by an earlier send, or never: the conversation ended
			return
		}
		_, err := c.w.Write(buf)
		errc <- err
	}()
	select {
	case err := <-errc:
		if err != nil {
			err = fmt.Errorf("write to the helper: %w", err)
			c.fail(err)
		}
		return err
	case <-ctx.Done():
		select {
		case err := <-errc: // the write finished after all
			if err == nil {
				return nil
			}
		default:
		}
		err := fmt.Errorf("write to the helper: %w", ctx.Err())
		c.fail(err)
		return err
	case <-c.done:
		return c.Err()
	}
}
