package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// floorHost is one host as the floor client sees it (written by the driver as JSON).
type floorHost struct {
	Name string `json:"name"`
	Port int    `json:"port"`
}

// Remote paths: the same files the runbook and the playbook manage.
const (
	benchDir    = "/etc/runbook-bench"
	benchConfig = benchDir + "/selinux-config"
	benchMotd   = benchDir + "/motd"
	uploadPath  = "/var/lib/runbench-floor/helper.upload"
)

func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// floorCommands are the seven remote steps of the eight tasks, as idempotent shell; the
// eighth (the assert) is checked on the client, as runbook and Ansible evaluate it on the
// controller too.
func floorCommands(host string) []string {
	motd := fmt.Sprintf("This is %s, managed from %s.\n", host, benchDir)
	return []string{
		"test -d " + benchDir + " || mkdir -m 0755 -p " + benchDir,
		"test -e " + benchConfig + " || printf 'SELINUX=enforcing\\nSELINUXTYPE=targeted\\n' > " + benchConfig,
		"grep -qx 'SELINUX=disabled' " + benchConfig + " || sed -i 's/^SELINUX=.*/SELINUX=disabled/' " + benchConfig,
		"printf %s " + shq(motd) + " | cmp -s - " + benchMotd + " || printf %s " + shq(motd) + " > " + benchMotd,
		"stat -c %s " + benchConfig,
		"true",
		"cat /proc/loadavg",
	}
}

// floorMain is `runbench floor`: one connection per host, all hosts at once, and the seven
// commands either in one session (`sh -c` of all of them, -sessions 1) or one session each
// (-sessions 8 style: one `sh -c` per step). With -upload FILE, the file is first written
// to each host over SFTP (a second session).
func floorMain(args []string) int {
	fs := flag.NewFlagSet("floor", flag.ContinueOnError)
	hostsFile := fs.String("hosts", "", "JSON list of {name, port}")
	khFile := fs.String("known-hosts", "", "known_hosts file")
	keyFile := fs.String("key", "", "private key")
	sessions := fs.Int("sessions", 1, "1: all commands in one session; otherwise one session per command")
	upload := fs.String("upload", "", "upload this file over SFTP first")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var hosts []floorHost
	b, err := os.ReadFile(*hostsFile)
	if err == nil {
		err = json.Unmarshal(b, &hosts)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hosts:", err)
		return 2
	}
	hk, err := knownhosts.New(*khFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "known_hosts:", err)
		return 2
	}
	kb, err := os.ReadFile(*keyFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	signer, err := ssh.ParsePrivateKey(kb)
	if err != nil {
		fmt.Fprintln(os.Stderr, "key:", err)
		return 2
	}
	var payload []byte
	if *upload != "" {
		if payload, err = os.ReadFile(*upload); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
	}
	cfg := &ssh.ClientConfig{
		User:            "root",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: hk,
		Timeout:         30 * time.Second,
	}
	errs := make([]error, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = floorHostRun(cfg, h, *sessions, payload)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("floor: %d hosts ok\n", len(hosts))
	return 0
}

func floorHostRun(cfg *ssh.ClientConfig, h floorHost, sessions int, payload []byte) error {
	c, err := ssh.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(h.Port)), cfg)
	if err != nil {
		return fmt.Errorf("%s: %w", h.Name, err)
	}
	defer c.Close()
	if payload != nil {
		if err := sftpUpload(c, payload); err != nil {
			return fmt.Errorf("%s: upload: %w", h.Name, err)
		}
	}
	cmds := floorCommands(h.Name)
	var outs []string
	if sessions == 1 {
		// One session: the steps separated by a marker line, so each output can be checked.
		const mark = "\n--runbench--\n"
		script := strings.Join(cmds, " && printf %s "+shq(mark)+" && ")
		out, err := run(c, script)
		if err != nil {
			return fmt.Errorf("%s: %w", h.Name, err)
		}
		outs = strings.Split(out, mark)
	} else {
		for _, cmd := range cmds {
			out, err := run(c, cmd)
			if err != nil {
				return fmt.Errorf("%s: %s: %w", h.Name, cmd, err)
			}
			outs = append(outs, out)
		}
	}
	if len(outs) != len(cmds) {
		return fmt.Errorf("%s: %d outputs for %d commands", h.Name, len(outs), len(cmds))
	}
	// The assert: the same two conditions as site.hcl and site.yml.
	size, _ := strconv.Atoi(strings.TrimSpace(outs[4]))
	if len(strings.Fields(outs[6])) != 5 || size <= 0 {
		return fmt.Errorf("%s: assert: unexpected /proc/loadavg %q or config size %q", h.Name, outs[6], outs[4])
	}
	return nil
}

func run(c *ssh.Client, cmd string) (string, error) {
	s, err := c.NewSession()
	if err != nil {
		return "", err
	}
	defer s.Close()
	var out, stderr bytes.Buffer
	s.Stdout, s.Stderr = &out, &stderr
	if err := s.Run("sh -c " + shq(cmd)); err != nil {
		return "", fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return out.String(), nil
}

func sftpUpload(c *ssh.Client, data []byte) error {
	sc, err := sftp.NewClient(c)
	if err != nil {
		return err
	}
	defer sc.Close()
	if err := sc.MkdirAll(path.Dir(uploadPath)); err != nil {
		return err
	}
	tmp := uploadPath + ".tmp"
	f, err := sc.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o755); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return sc.PosixRename(tmp, uploadPath)
}
