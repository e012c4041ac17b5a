// Command runtime-setpriv becomes a container's user and runs its command, in place of
// util-linux's setpriv, for the devcluster runtime (operator/runbook_operator/devcluster/
// runtime/sandbox.py). The runtime, as root, builds a container's root with bubblewrap and
// must then drop to the pod's user inside it; an image of its own (a distroless one) has no
// setpriv, and setpriv's shared libraries would not be there either. Static (CGO off), this
// runs in any root: the runtime passes it as an open file descriptor and executes it as
// /proc/self/fd/N, so nothing is added to the container's filesystem.
//
//	runtime-setpriv UID GID GROUPS COMMAND [ARG...]
//
// GROUPS is a comma-separated list of supplementary group ids (the first is usually GID).
// Sets no_new_privs (allowPrivilegeEscalation: false), marks every inherited descriptor above
// stderr close-on-exec (its own included), and executes COMMAND found on PATH.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

const prSetNoNewPrivs = 38

func ids(text string) ([]int, error) {
	var out []int
	for _, field := range strings.Split(text, ",") {
		if field == "" {
			continue
		}
		id, err := strconv.Atoi(field)
		if err != nil {
			return nil, fmt.Errorf("not a numeric id: %q", field)
		}
		out = append(out, id)
	}
	return out, nil
}

func run(args []string) error {
	if len(args) < 4 {
		return fmt.Errorf("usage: runtime-setpriv UID GID GROUPS COMMAND [ARG...]")
	}
	uid, err := strconv.Atoi(args[0])
	if err != nil {
		return fmt.Errorf("uid: %w", err)
	}
	gid, err := strconv.Atoi(args[1])
	if err != nil {
		return fmt.Errorf("gid: %w", err)
	}
	groups, err := ids(args[2])
	if err != nil {
		return err
	}
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setgid(gid); err != nil {
		return fmt.Errorf("setgid: %w", err)
	}
	if err := syscall.Setuid(uid); err != nil {
		return fmt.Errorf("setuid: %w", err)
	}
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetNoNewPrivs, 1, 0); errno != 0 {
		return fmt.Errorf("no_new_privs: %w", errno)
	}
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	for _, entry := range entries {
		if fd, err := strconv.Atoi(entry.Name()); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
	path, err := exec.LookPath(args[3])
	if err != nil {
		return err
	}
	return syscall.Exec(path, args[3:], os.Environ())
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "runtime-setpriv: %v\n", err)
		os.Exit(127)
	}
}
