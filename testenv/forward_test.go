package testenv

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	a, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-acc
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// TestPipeDelaySwitch relays a stream through pipe and sets the host's delay
// half way: every byte arrives, in order, and the part after the switch waits
// for the delay; a write failure ends the pipe.
func TestPipeDelaySwitch(t *testing.T) {
	for _, tc := range []struct {
		name    string
		delayAt int // chunk after which the delay is set (-1: never)
		delay   time.Duration
		healAt  int // chunk after which it is taken off again (0: never)
	}{
		{"direct", -1, 0, 0},
		{"slowed from the start", 0, 80 * time.Millisecond, 0},
		{"slowed half way", 50, 80 * time.Millisecond, 0},
		// Chunks read after the heal must not overtake those still queued.
		{"slowed then healed", 30, 300 * time.Millisecond, 31},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// writer -> srcW | srcR -> pipe -> dstW | dstR -> reader
			srcW, srcR := tcpPair(t)
			dstW, dstR := tcpPair(t)
			tgt := &fwdTarget{name: "lab01"}
			if tc.delayAt == 0 {
				tgt.delay.Store(int64(tc.delay))
			}
			done := make(chan struct{})
			go func() { tgt.pipe(dstW, srcR); close(done) }()
			var want bytes.Buffer
			got := make(chan []byte, 1)
			go func() { b, _ := io.ReadAll(dstR); got <- b }()
			start := time.Now()
			for i := 0; i < 100; i++ {
				if i == tc.delayAt && i > 0 {
					time.Sleep(20 * time.Millisecond) // let pipe pass what it has
					tgt.delay.Store(int64(tc.delay))
				}
				if i == tc.healAt && i > 0 {
					time.Sleep(50 * time.Millisecond) // the last chunk is queued now
					tgt.delay.Store(0)
				}
				line := fmt.Sprintf("chunk %03d %s\n", i, bytes.Repeat([]byte{'x'}, i*100))
				want.WriteString(line)
				if _, err := srcW.Write([]byte(line)); err != nil {
					t.Fatal(err)
				}
			}
			srcW.(*net.TCPConn).CloseWrite()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("pipe did not end after its source closed")
			}
			b := <-got
			if !bytes.Equal(b, want.Bytes()) {
				t.Fatalf("relayed %d bytes, want %d, in order", len(b), want.Len())
			}
			if el := time.Since(start); tc.delay > 0 && tc.healAt == 0 && el < tc.delay {
				t.Errorf("slowed stream arrived after %s, less than the delay %s", el, tc.delay)
			}
		})
	}
	t.Run("peer gone", func(t *testing.T) {
		srcW, srcR := tcpPair(t)
		dstW, dstR := tcpPair(t)
		dstR.Close()
		tgt := &fwdTarget{name: "lab01"}
		done := make(chan struct{})
		go func() { tgt.pipe(dstW, srcR); close(done) }()
		// Writes to a closed peer fail after a reset; keep sending until pipe gives up.
		deadline := time.Now().Add(10 * time.Second)
		for {
			select {
			case <-done:
				return
			default:
			}
			if time.Now().After(deadline) {
				t.Fatal("pipe kept running after its destination went away")
			}
			srcW.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			srcW.Write(bytes.Repeat([]byte{'y'}, 4096))
		}
	})
}
