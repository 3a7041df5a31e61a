package procgroup

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A shell that ignores SIGTERM and has a child: Stop kills the whole group
// after the grace period, child included.
func TestStopEndsTheGroup(t *testing.T) {
	cmd := exec.Command("sh", "-c", `trap '' TERM; sleep 60 & echo $!; wait`)
	Prepare(cmd, syscall.SIGKILL)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var childPID int
	buf := make([]byte, 32)
	n, _ := out.Read(buf)
	for _, c := range buf[:n] {
		if c >= '0' && c <= '9' {
			childPID = childPID*10 + int(c-'0')
		}
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	Stop(cmd, done, 200*time.Millisecond)
	// The child was in the group: it is gone, or a zombie waiting for init
	// to reap it (state Z), which not every container's init does promptly.
	deadline := time.Now().Add(5 * time.Second)
	for alive(childPID) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if alive(childPID) {
		t.Fatalf("child %d of the group survived Stop", childPID)
	}
}

// alive reports whether pid runs: it exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses: "pid (comm) S ...".
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func TestStopOfAProcessNeverStartedIsANoOp(t *testing.T) {
	Stop(exec.Command("true"), nil, time.Millisecond)
	Stop(nil, nil, time.Millisecond)
}
