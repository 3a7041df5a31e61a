// Package rie runs the deployable Lambda artifacts locally, two ways.
//
// Under the AWS Lambda Runtime Interface Emulator (Start): it builds a
// function's bootstrap for the host, builds the emulator from the module
// version pinned in go.mod, runs the bootstrap under it on free ports,
// invokes it over the emulator's HTTP API and reads the emulator's REPORT
// lines. The end-to-end tests use this.
//
// Directly against an in-process Runtime API (StartRuntime): the bootstrap
// is started with AWS_LAMBDA_RUNTIME_API pointing at a small implementation
// of the documented endpoints, so the init phase can be timed as Lambda
// defines it — process start to the first GET /runtime/invocation/next —
// and the peak RSS read at that moment and after each invocation. The
// cold-start benchmark uses this.
//
// Why both: the emulator's REPORT "Init Duration" times only an asynchronous
// hand-off inside the emulator (microseconds, before the bootstrap has even
// started) and its "Max Memory Used" repeats the configured memory size, so
// neither says anything about the bootstrap; the emulator's wall times are
// kept as a second, coarser estimate (ColdStart).
package rie

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/zsmseven/backend/internal/devstack/procgroup"
)

// EmulatorPackage is the emulator's main package, a tool dependency in go.mod.
const EmulatorPackage = "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie"

// BuildEmulator builds the emulator into dir and returns the binary's path.
// It must run inside the module (any package directory will do), so the
// version pinned in go.mod is the one built.
func BuildEmulator(ctx context.Context, dir string) (string, error) {
	out := filepath.Join(dir, "aws-lambda-rie")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, EmulatorPackage)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %w\n%s", EmulatorPackage, err, b)
	}
	return out, nil
}

// BuildBootstrap builds the Lambda in pkg (e.g. "./lambdas/processticker" or
// a full import path) as the deployed artifact is built — linux, static,
// -tags lambda.norpc, -trimpath — but for the host's architecture so it runs
// here, and returns the path of out.
func BuildBootstrap(ctx context.Context, pkg, out string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", "lambda.norpc", "-trimpath", "-buildvcs=false", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+runtime.GOARCH, "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %w\n%s", pkg, err, b)
	}
	return out, nil
}

// Options configure Start.
type Options struct {
	// Emulator is the aws-lambda-rie binary (from BuildEmulator).
	Emulator string
	// Bootstrap is the function's bootstrap binary.
	Bootstrap string
	// Env is the function's environment (KEY=VALUE), added to a minimal base
	// (PATH, HOME); the host's environment is not inherited, as on Lambda.
	Env []string
	// MemoryMB is the configured memory size reported by the emulator
	// (default 128); TimeoutSeconds the invocation timeout (default 60).
	MemoryMB, TimeoutSeconds int
	// Output, if set, receives a copy of everything the emulator and the
	// function print.
	Output io.Writer
}

// Function is a bootstrap running under the emulator.
type Function struct {
	// URL is the invocation endpoint.
	URL string

	cmd  *exec.Cmd
	done chan error
	out  *syncBuffer

	mu    sync.Mutex
	walls []time.Duration
}

// Start runs the bootstrap under the emulator on free ports and waits until
// the emulator accepts connections. The function itself initialises on the
// first invocation, as on Lambda, so its Init Duration is in the first REPORT.
func Start(ctx context.Context, opts Options) (*Function, error) {
	if opts.MemoryMB == 0 {
		opts.MemoryMB = 128
	}
	if opts.TimeoutSeconds == 0 {
		opts.TimeoutSeconds = 60
	}
	boot, err := filepath.Abs(opts.Bootstrap)
	if err != nil {
		return nil, fmt.Errorf("bootstrap path: %w", err)
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	cmd := exec.Command(opts.Emulator,
		"--runtime-interface-emulator-address", addr,
		"--runtime-api-address", fmt.Sprintf("127.0.0.1:%d", ports[1]),
		"--log-level", "warn",
		boot)
	cmd.Dir = filepath.Dir(boot)
	cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir(),
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=" + strconv.Itoa(opts.MemoryMB),
		"AWS_LAMBDA_FUNCTION_TIMEOUT=" + strconv.Itoa(opts.TimeoutSeconds),
		"AWS_LAMBDA_FUNCTION_NAME=" + filepath.Base(filepath.Dir(boot)),
	}, opts.Env...)
	f := &Function{URL: "http://" + addr + "/2015-03-31/functions/function/invocations", cmd: cmd, done: make(chan error, 1), out: &syncBuffer{tee: opts.Output}}
	cmd.Stdout, cmd.Stderr = f.out, f.out
	// Its own process group, so Stop ends the bootstrap child too.
	procgroup.Prepare(cmd, syscall.SIGKILL)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start emulator: %w", err)
	}
	go func() { f.done <- cmd.Wait() }()
	if err := f.waitListening(ctx, addr); err != nil {
		f.Stop()
		return nil, err
	}
	return f, nil
}

func (f *Function) waitListening(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case err := <-f.done:
			f.done <- err
			return fmt.Errorf("emulator exited before listening (%v): %s", err, f.Output())
		case <-ctx.Done():
			return fmt.Errorf("emulator not listening on %s: %w", addr, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// InvokeError is a non-200 answer of the emulator (for instance 502 when the
// bootstrap failed to initialise) or a function error payload.
type InvokeError struct {
	Status int
	Body   string
}

func (e *InvokeError) Error() string {
	return fmt.Sprintf("invoke: status %d: %s", e.Status, e.Body)
}

// Invoke posts payload as the event and returns the function's response. A
// function error comes back as an *InvokeError with the error payload (the
// emulator answers 200 with {"errorMessage",…} for a handler error; that is
// recognised too).
func (f *Function) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.URL, bytes.NewReader(payload))
	if err != nil {
		return nil, fmt.Errorf("invoke: %w", err)
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("invoke: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("invoke: read response: %w", err)
	}
	f.mu.Lock()
	f.walls = append(f.walls, time.Since(start))
	f.mu.Unlock()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Amz-Function-Error") != "" || isErrorPayload(body) {
		return body, &InvokeError{Status: resp.StatusCode, Body: string(body)}
	}
	return body, nil
}

var errorPayload = regexp.MustCompile(`^\s*\{\s*"errorMessage"\s*:`)

func isErrorPayload(b []byte) bool { return errorPayload.Match(b) }

// Walls are the client-side wall times of the invocations so far, in order.
// The first includes the cold start: the emulator starts the bootstrap and
// the function initialises on the first invocation.
func (f *Function) Walls() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Duration(nil), f.walls...)
}

// ColdStart estimates the cold-start overhead as the first invocation's wall
// time minus the fastest later one; meaningful when the invocations did the
// same work. ok is false with fewer than two invocations.
//
// The emulator's own "Init Duration" is not this number: it times only the
// hand-off of the init request to its sandbox, which returns before the
// bootstrap has even started, so it reads a few microseconds.
func (f *Function) ColdStart() (time.Duration, bool) {
	w := f.Walls()
	if len(w) < 2 {
		return 0, false
	}
	warm := w[1]
	for _, d := range w[2:] {
		warm = min(warm, d)
	}
	return max(w[0]-warm, 0), true
}

// Output is everything the emulator and the function printed so far.
func (f *Function) Output() string { return f.out.String() }

// Reports parses the REPORT lines printed so far. The emulator prints a
// REPORT just after it answers, so right after Invoke it may be missing:
// use WaitReports.
func (f *Function) Reports() []Report { return ParseReports(f.Output()) }

// WaitReports waits up to timeout for at least n REPORT lines and returns
// those printed by then.
func (f *Function) WaitReports(n int, timeout time.Duration) []Report {
	deadline := time.Now().Add(timeout)
	for {
		reps := f.Reports()
		if len(reps) >= n || time.Now().After(deadline) {
			return reps
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// PeakRSSKiB reads the bootstrap process's peak resident set size (VmHWM)
// in KiB from /proc. It works while the function runs (after the first
// invocation started it).
func (f *Function) PeakRSSKiB() (int64, error) {
	if f.cmd.Process == nil {
		return 0, errors.New("emulator not started")
	}
	pids, err := children(f.cmd.Process.Pid)
	if err != nil {
		return 0, err
	}
	var peak int64
	for _, pid := range pids {
		if kb, err := vmHWM(pid); err == nil && kb > peak {
			peak = kb
		}
	}
	if peak == 0 {
		return 0, errors.New("bootstrap process not found under the emulator")
	}
	return peak, nil
}

// Stop ends the emulator and the bootstrap.
func (f *Function) Stop() {
	if f == nil {
		return
	}
	procgroup.Stop(f.cmd, f.done, 3*time.Second)
}

// Report is one REPORT line of the emulator.
type Report struct {
	RequestID string
	// Init is the Init Duration (zero when the line has none: a warm invoke).
	Init time.Duration
	// Duration is the invocation's duration.
	Duration time.Duration
	// MaxMemoryUsedMB as the emulator prints it (it echoes the memory size).
	MaxMemoryUsedMB int
}

var reportRE = regexp.MustCompile(`REPORT RequestId: (\S+)\s+(?:Init Duration: ([0-9.]+) ms\s+)?Duration: ([0-9.]+) ms\s+.*?Max Memory Used: (\d+) MB`)

// ParseReports extracts every REPORT line from the emulator's output.
func ParseReports(output string) []Report {
	var out []Report
	sc := bufio.NewScanner(strings.NewReader(output))
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	for sc.Scan() {
		m := reportRE.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		r := Report{RequestID: m[1], Duration: ms(m[3])}
		if m[2] != "" {
			r.Init = ms(m[2])
		}
		r.MaxMemoryUsedMB, _ = strconv.Atoi(m[4])
		out = append(out, r)
	}
	return out
}

func ms(s string) time.Duration {
	f, _ := strconv.ParseFloat(s, 64)
	return time.Duration(f * float64(time.Millisecond))
}

// children lists the descendants of pid (all its threads' children, then
// theirs).
func children(pid int) ([]int, error) {
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", p))
		if err != nil {
			if p == pid {
				return nil, fmt.Errorf("read /proc: %w", err)
			}
			continue
		}
		for _, t := range tasks {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", p, t.Name()))
			if err != nil {
				continue
			}
			for _, f := range strings.Fields(string(b)) {
				if c, err := strconv.Atoi(f); err == nil {
					out = append(out, c)
					queue = append(queue, c)
				}
			}
		}
	}
	return out, nil
}

func vmHWM(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return 0, errors.New("no VmHWM")
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// syncBuffer collects output written concurrently by the process's pipes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	tee io.Writer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tee != nil {
		_, _ = b.tee.Write(p)
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
