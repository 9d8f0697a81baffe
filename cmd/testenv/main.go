// Command testenv starts, inspects, breaks and stops the lab: real Linux
// hosts on this machine for runbook's tests, benchmarks and demo.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/runbook/runbook/testenv"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage:
  testenv up     --tier ns|systemd|vm --hosts N --dir DIR [--subnet CIDR] [--per-segment N] [--layer libvirt] [--userland busybox|systemd]
  testenv down   --dir DIR
  testenv status --dir DIR
  testenv exec   --dir DIR HOST -- CMD [ARG...]
  testenv break  --dir DIR HOST stop|slow|drop|freeze
  testenv heal   --dir DIR HOST
`

// run is the whole CLI; it returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("testenv "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	dir := fs.String("dir", defaultDir(), "lab directory")
	switch cmd {
	case "up":
		tier := fs.String("tier", string(testenv.TierNS), "lab tier: ns, systemd or vm")
		hosts := fs.Int("hosts", 3, "number of hosts")
		subnet := fs.String("subnet", "", "management subnet (default: a free /24 of "+testenv.DefaultPool+", or a free aligned block of /24s for more than "+strconv.Itoa(testenv.MaxHostsPerSegment)+" hosts)")
		perSegment := fs.Int("per-segment", 0, "hosts per /24 segment (default "+strconv.Itoa(testenv.MaxHostsPerSegment)+")")
		layers := fs.String("layer", "", "package layers over the base tree, comma-separated (libvirt): systemd tier, or vm with --userland systemd")
		userland := fs.String("userland", "", "vm tier: the guests' userland, busybox (default) or systemd (the systemd tier's base tree as root disk)")
		if _, _, err := parseArgs(fs, args); err != nil {
			return 2
		}
		var ls []string
		for _, l := range strings.Split(*layers, ",") {
			if l = strings.TrimSpace(l); l != "" {
				ls = append(ls, l)
			}
		}
		return up(ctx, *dir, testenv.Options{Tier: testenv.TierName(*tier), Hosts: *hosts, Subnet: *subnet,
			HostsPerSegment: *perSegment, Layers: ls, VMUserland: *userland}, stdout, stderr)
	case "down":
		if _, _, err := parseArgs(fs, args); err != nil {
			return 2
		}
		dctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		if err := testenv.Down(dctx, *dir, stderr); err != nil {
			fmt.Fprintln(stderr, "testenv down:", err)
			return 1
		}
		return 0
	case "status":
		if _, _, err := parseArgs(fs, args); err != nil {
			return 2
		}
		return status(ctx, *dir, stdout, stderr)
	case "exec":
		pos, rest, err := parseArgs(fs, args)
		if err != nil {
			return 2
		}
		if len(pos) != 1 || len(rest) == 0 {
			fmt.Fprint(stderr, "testenv exec: want HOST -- CMD [ARG...]\n", usage)
			return 2
		}
		return execIn(ctx, *dir, pos[0], rest, stdout, stderr)
	case "break", "heal":
		pos, _, err := parseArgs(fs, args)
		if err != nil {
			return 2
		}
		want := 2
		if cmd == "heal" {
			want = 1
		}
		if len(pos) != want {
			fmt.Fprint(stderr, usage)
			return 2
		}
		lab, err := testenv.Open(*dir)
		if err != nil {
			fmt.Fprintf(stderr, "testenv %s: %v\n", cmd, err)
			return 1
		}
		if cmd == "break" {
			err = lab.Break(pos[0], testenv.BreakMode(pos[1]))
		} else {
			err = lab.Heal(pos[0])
		}
		if err != nil {
			fmt.Fprintf(stderr, "testenv %s: %v\n", cmd, err)
			return 1
		}
		return 0
	case "forward":
		// Internal: the forwarder daemon that `up` starts.
		if _, _, err := parseArgs(fs, args); err != nil {
			return 2
		}
		if err := testenv.ServeForwarders(ctx, *dir); err != nil {
			fmt.Fprintln(stderr, "testenv forward:", err)
			return 1
		}
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "testenv: unknown command %q\n%s", cmd, usage)
		return 2
	}
}

func defaultDir() string {
	if d := os.Getenv("RUNBOOK_LAB_DIR"); d != "" {
		return d
	}
	return "lab"
}

// parseArgs parses flags that may come before or after positional arguments
// and returns the positionals and whatever follows "--".
func parseArgs(fs *flag.FlagSet, args []string) (pos, rest []string, err error) {
	for {
		if err := fs.Parse(args); err != nil {
			return nil, nil, err
		}
		left := fs.Args()
		// flag stops at the first positional, or consumes "--" and stops.
		consumed := args[:len(args)-len(left)]
		if n := len(consumed); n > 0 && consumed[n-1] == "--" {
			return pos, left, nil
		}
		if len(left) == 0 {
			return pos, nil, nil
		}
		pos = append(pos, left[0])
		args = left[1:]
	}
}

func up(ctx context.Context, dir string, opts testenv.Options, stdout, stderr io.Writer) int {
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(stderr, "testenv up:", err)
		return 1
	}
	// The limit this command was started with (the Go runtime has raised the
	// soft limit to the hard one by now): a controller started from the same
	// shell gets the same hard limit.
	nofile, _ := testenv.CurrentNofile()
	start := time.Now()
	uctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	opts.Dir, opts.Log = dir, stderr
	opts.Daemon = []string{self, "forward", "--dir", absDir(dir)}
	lab, err := testenv.Up(uctx, opts)
	if err != nil {
		fmt.Fprintln(stderr, "testenv up:", err)
		return 1
	}
	n := len(lab.Hosts)
	fmt.Fprintf(stdout, "inventory: %s\n", lab.Inventory)
	fmt.Fprintf(stdout, "up: %d %s hosts in %.2fs (subnet %s, %d segment(s), names %s-*)\n",
		n, lab.Tier, time.Since(start).Seconds(), lab.Subnet(), len(lab.Segments()), lab.Prefix())
	need := testenv.ControllerFDs(n)
	fmt.Fprintf(stdout, "file descriptors: a controller reaching all %d hosts at once (runbook --forks %d) needs about %d; the hard limit here is %d (runbook raises its soft limit to it)\n",
		n, n, need, nofile.Hard)
	if nofile.Hard < uint64(need) {
		fmt.Fprintf(stderr, "testenv up: warning: RLIMIT_NOFILE hard limit %d is below the %d a controller needs for all %d hosts at once: raise it (ulimit -Hn) or use fewer forks\n", nofile.Hard, need, n)
	}
	return 0
}

func absDir(d string) string {
	if a, err := filepath.Abs(d); err == nil {
		return a
	}
	return d
}

func status(ctx context.Context, dir string, stdout, stderr io.Writer) int {
	lab, err := testenv.Open(dir)
	if err != nil {
		fmt.Fprintln(stderr, "testenv status:", err)
		return 1
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	fmt.Fprintf(stdout, "lab %s: tier %s, subnet %s, inventory %s\n", lab.Dir, lab.Tier, lab.Subnet(), lab.Inventory)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tPORT\tMGMT_IP\tRUNNING\tSSH\tBROKEN")
	code := 0
	hosts := lab.Status(sctx)
	running, answering, faulty := 0, 0, 0
	for _, s := range hosts {
		broken := string(s.Broken)
		if broken == "" {
			broken = "-"
		} else {
			faulty++
		}
		if s.Running {
			running++
		}
		if s.SSH {
			answering++
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%v\t%v\t%s\n", s.Name, s.Port, s.MgmtIP, s.Running, s.SSH, broken)
		if !s.Running {
			code = 1
		}
	}
	tw.Flush()
	if len(hosts) > 20 {
		fmt.Fprintf(stdout, "%d hosts: %d running, %d answering ssh, %d broken\n", len(hosts), running, answering, faulty)
	}
	return code
}

func execIn(ctx context.Context, dir, host string, argv []string, stdout, stderr io.Writer) int {
	lab, err := testenv.Open(dir)
	if err != nil {
		fmt.Fprintln(stderr, "testenv exec:", err)
		return 1
	}
	cmd, err := lab.Command(ctx, host, argv...)
	if err != nil {
		fmt.Fprintln(stderr, "testenv exec:", err)
		return 1
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	default:
		fmt.Fprintln(stderr, "testenv exec:", err)
		return 1
	}
}
