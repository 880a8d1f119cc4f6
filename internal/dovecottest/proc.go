package dovecottest

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// proc is what the harness needs to know about one process.
type proc struct {
	pid, ppid, pgrp int
	state           byte
	comm            string
}

// procList lists the processes in /proc; ok is false where there is no
// /proc (the callers then skip what they use it for).
func procList() (procs []proc, ok bool) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, false
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // it exited meanwhile
		}
		if p, ok := parseStat(pid, b); ok {
			procs = append(procs, p)
		}
	}
	return procs, true
}

// parseStat parses /proc/<pid>/stat: "pid (comm) state ppid pgrp ...",
// where comm may itself contain spaces and parentheses.
func parseStat(pid int, b []byte) (proc, bool) {
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return proc{}, false
	}
	f := strings.Fields(string(b[end+1:]))
	if len(f) < 3 || len(f[0]) != 1 {
		return proc{}, false
	}
	ppid, err1 := strconv.Atoi(f[1])
	pgrp, err2 := strconv.Atoi(f[2])
	if err1 != nil || err2 != nil {
		return proc{}, false
	}
	return proc{pid: pid, ppid: ppid, pgrp: pgrp, state: f[0][0], comm: string(b[open+1 : end])}, true
}

// sessions returns the titles of the IMAP and POP3 session processes (the
// ones that open Maildirs) that the Dovecot master currently runs.
func (s *Server) sessions() []string {
	if s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	procs, ok := procList()
	if !ok {
		return nil
	}
	var titles []string
	for _, p := range procs {
		if p.ppid != s.cmd.Process.Pid || p.state == 'Z' || (p.comm != "imap" && p.comm != "pop3") {
			continue
		}
		title := p.comm
		if b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p.pid), "cmdline")); err == nil {
			if t := strings.TrimSpace(string(bytes.ReplaceAll(b, []byte{0}, []byte{' '}))); t != "" {
				title = t
			}
		}
		titles = append(titles, title)
	}
	return titles
}

// waitNoSessions waits until no IMAP or POP3 session process is left (a
// client that has just logged out may still be closing its mailbox), and
// reports false through tb.Fatalf if one stays open longer than
// s.sessionWait. Where /proc is missing it cannot see sessions and returns
// true at once.
func (s *Server) waitNoSessions(tb testing.TB, op string) bool {
	tb.Helper()
	deadline := time.Now().Add(s.sessionWait)
	for {
		open := s.sessions()
		if len(open) == 0 {
			return true
		}
		if time.Now().After(deadline) {
			tb.Fatalf("dovecottest: %s needs every IMAP and POP3 session to be closed, but these are still open after %v: %s",
				op, s.sessionWait, strings.Join(open, "; "))
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// onlyLoggerLeft reports whether the Dovecot master master has no process
// left in its group but its "log" process (Dovecot's master then only waits
// for the logger before it exits). Without /proc it reports false.
func onlyLoggerLeft(master int) bool {
	procs, ok := procList()
	if !ok {
		return false
	}
	for _, p := range procs {
		if p.pgrp == master && p.pid != master && p.state != 'Z' && p.comm != "log" {
			return false
		}
	}
	return true
}
