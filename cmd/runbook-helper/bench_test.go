package main

import (
	"context"
	"io"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/engine/protocol"
)

// BenchmarkCommandRequest measures one command request (argv = ["true"]) served in
// process, through the protocol's encoding on both ends: what a command task costs beyond
// the child process itself.
func BenchmarkCommandRequest(b *testing.B) {
	args := cty.ObjectVal(map[string]cty.Value{"argv": cty.ListVal([]cty.Value{cty.StringVal("true")})})
	benchRequests(b, "command", args)
}

// BenchmarkFileRequest measures a file request that finds the directory in place.
func BenchmarkFileRequest(b *testing.B) {
	args := cty.ObjectVal(map[string]cty.Value{"path": cty.StringVal(b.TempDir()), "state": cty.StringVal("directory")})
	benchRequests(b, "file", args)
}

func benchRequests(b *testing.B, module string, args cty.Value) {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan int)
	go func() { done <- run(context.Background(), nil, inR, outW, io.Discard) }()
	client, err := protocol.NewClient(context.Background(), outR, inW)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		resp, err := client.Call(context.Background(), &protocol.Request{Op: protocol.OpApply, Module: module, Args: args})
		if err != nil || resp.Status == protocol.StatusFailed {
			b.Fatalf("%v %+v", err, resp)
		}
	}
	b.StopTimer()
	inW.Close()
	<-done
	outW.Close()
}
