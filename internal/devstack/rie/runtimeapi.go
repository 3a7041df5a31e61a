package rie

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Runtime API paths (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html).
const (
	apiVersion   = "/2018-06-01"
	pathNext     = apiVersion + "/runtime/invocation/next"
	pathResponse = apiVersion + "/runtime/invocation/{id}/response"
	pathError    = apiVersion + "/runtime/invocation/{id}/error"
	pathInitErr  = apiVersion + "/runtime/init/error"

	headerRequestID   = "Lambda-Runtime-Aws-Request-Id"
	headerDeadline    = "Lambda-Runtime-Deadline-Ms"
	headerFunctionARN = "Lambda-Runtime-Invoked-Function-Arn"
	headerTraceID     = "Lambda-Runtime-Trace-Id"
	headerErrorType   = "Lambda-Runtime-Function-Error-Type"

	// maxPayload is Lambda's limit on a synchronous response (6 MB).
	maxPayload = 6 << 20
)

// RuntimeOptions configure StartRuntime.
type RuntimeOptions struct {
	// Bootstrap is the function's bootstrap binary.
	Bootstrap string
	// Env is the function's environment (KEY=VALUE). It is added after the
	// variables Lambda sets (AWS_LAMBDA_RUNTIME_API, AWS_LAMBDA_FUNCTION_*,
	// AWS_REGION…), so it may override them except AWS_LAMBDA_RUNTIME_API;
	// the host's environment is not inherited, as on Lambda.
	Env []string
	// FunctionName defaults to the bootstrap directory's name.
	FunctionName string
	// Region defaults to us-east-1 (AWS_REGION in Env takes precedence).
	Region string
	// MemoryMB is AWS_LAMBDA_FUNCTION_MEMORY_SIZE (default 128);
	// TimeoutSeconds sets each invocation's deadline (default 60).
	MemoryMB, TimeoutSeconds int
	// Output, if set, receives a copy of everything the function prints.
	Output io.Writer
}

// Runtime is a bootstrap started directly (no emulator) against an
// in-process implementation of the Lambda Runtime API, so that its init
// phase can be timed the way Lambda defines it: from the moment the process
// is started to its first GET /runtime/invocation/next, which is when
// Lambda ends the init phase and reports "Init Duration".
type Runtime struct {
	opts   RuntimeOptions
	arn    string
	cmd    *exec.Cmd
	srv    *http.Server
	out    *syncBuffer
	done   chan struct{} // closed when the process has exited
	waited error         // the process's exit status, once done is closed

	started time.Time
	ready   chan struct{} // closed once cmd.Process is set
	events  chan *invocation
	stop    chan struct{}
	stopped sync.Once

	initOnce sync.Once
	initDone chan struct{}
	init     InitResult
	initErr  error

	mu       sync.Mutex
	inflight map[string]*invocation
}

// InitResult is what the init phase measured.
type InitResult struct {
	// Duration runs from just before the bootstrap process was started to
	// its first GET /runtime/invocation/next.
	Duration time.Duration
	// PeakRSSKiB is the process's peak resident set size (VmHWM) read at
	// that first /next, while the runtime waits for its first event.
	PeakRSSKiB int64
}

// InitError is a bootstrap's report on /runtime/init/error, or its exit
// before it asked for an event.
type InitError struct {
	// Type is the Lambda-Runtime-Function-Error-Type header ("" for an exit).
	Type string
	// Body is the error document posted, or the process's output on exit.
	Body string
}

func (e *InitError) Error() string {
	if e.Type == "" {
		return "init: bootstrap exited before its first /next: " + e.Body
	}
	return fmt.Sprintf("init: %s: %s", e.Type, e.Body)
}

type invocation struct {
	id      string
	payload []byte
	result  chan invokeResult
	// handedOut is when /next gave the event to the function.
	handedOut time.Time
}

type invokeResult struct {
	body     []byte
	errType  string // set when the function posted to /error
	duration time.Duration
}

// StartRuntime serves the Runtime API on a free loopback port and starts
// the bootstrap against it. It returns at once; WaitInit waits for the init
// phase to end.
func StartRuntime(ctx context.Context, opts RuntimeOptions) (*Runtime, error) {
	if opts.MemoryMB == 0 {
		opts.MemoryMB = 128
	}
	if opts.TimeoutSeconds == 0 {
		opts.TimeoutSeconds = 60
	}
	if opts.Region == "" {
		opts.Region = "us-east-1"
	}
	boot, err := filepath.Abs(opts.Bootstrap)
	if err != nil {
		return nil, fmt.Errorf("bootstrap path: %w", err)
	}
	if opts.FunctionName == "" {
		opts.FunctionName = filepath.Base(filepath.Dir(boot))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for the Runtime API: %w", err)
	}
	r := &Runtime{
		opts:     opts,
		arn:      fmt.Sprintf("arn:aws:lambda:%s:000000000000:function:%s", opts.Region, opts.FunctionName),
		out:      &syncBuffer{tee: opts.Output},
		done:     make(chan struct{}),
		ready:    make(chan struct{}),
		events:   make(chan *invocation, 16),
		stop:     make(chan struct{}),
		initDone: make(chan struct{}),
		inflight: map[string]*invocation{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+pathNext, r.next)
	mux.HandleFunc("POST "+pathResponse, r.respond(false))
	mux.HandleFunc("POST "+pathError, r.respond(true))
	mux.HandleFunc("POST "+pathInitErr, r.initError)
	r.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()

	// The Lambda-defined variables first, so opts.Env overrides them (exec
	// keeps the last value of a duplicated key), then the API address last:
	// it must point here.
	env := []string{
		"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + os.TempDir(),
		"LANG=en_US.UTF-8", "TZ=:UTC",
		"LAMBDA_TASK_ROOT=" + filepath.Dir(boot), "_HANDLER=" + filepath.Base(boot),
		"AWS_REGION=" + opts.Region, "AWS_DEFAULT_REGION=" + opts.Region,
		"AWS_LAMBDA_FUNCTION_NAME=" + opts.FunctionName,
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=" + strconv.Itoa(opts.MemoryMB),
		"AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
		"AWS_LAMBDA_INITIALIZATION_TYPE=on-demand",
		"AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/" + opts.FunctionName,
		"AWS_LAMBDA_LOG_STREAM_NAME=local/[$LATEST]" + newID()[:32],
	}
	env = append(env, opts.Env...)
	env = append(env, "AWS_LAMBDA_RUNTIME_API="+ln.Addr().String())
	cmd := exec.CommandContext(ctx, boot)
	cmd.Dir = filepath.Dir(boot)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = r.out, r.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	r.cmd = cmd
	r.started = time.Now()
	if err := cmd.Start(); err != nil {
		r.srv.Close()
		return nil, fmt.Errorf("start %s: %w", boot, err)
	}
	close(r.ready)
	go func() {
		r.waited = cmd.Wait()
		close(r.done)
		// A process that ends before its first /next failed its init.
		r.endInit(InitResult{}, &InitError{Body: fmt.Sprintf("%v\n%s", r.waited, tail(r.out.String(), 2000))})
	}()
	return r, nil
}

// endInit records the end of the init phase once: the first /next, an init
// error, or the process's exit, whichever comes first.
func (r *Runtime) endInit(res InitResult, err error) {
	r.initOnce.Do(func() {
		r.init, r.initErr = res, err
		close(r.initDone)
	})
}

// WaitInit waits for the init phase to end and returns its measurement, or
// an *InitError when the bootstrap reported one or exited first.
func (r *Runtime) WaitInit(ctx context.Context) (InitResult, error) {
	select {
	case <-r.initDone:
		return r.init, r.initErr
	case <-ctx.Done():
		return InitResult{}, fmt.Errorf("wait for the bootstrap's first /next: %w", ctx.Err())
	}
}

func (r *Runtime) next(w http.ResponseWriter, req *http.Request) {
	now := time.Now()
	<-r.ready
	select {
	case <-r.initDone:
	default:
		// The runtime is blocked on this request: its peak RSS now is the
		// init phase's.
		res := InitResult{Duration: now.Sub(r.started)}
		res.PeakRSSKiB, _ = vmHWM(r.cmd.Process.Pid)
		r.endInit(res, nil)
	}
	var inv *invocation
	select {
	case inv = <-r.events:
	case <-req.Context().Done():
		return
	case <-r.stop:
		return
	}
	deadline := time.Now().Add(time.Duration(r.opts.TimeoutSeconds) * time.Second)
	r.mu.Lock()
	r.inflight[inv.id] = inv
	r.mu.Unlock()
	h := w.Header()
	h.Set(headerRequestID, inv.id)
	h.Set(headerDeadline, strconv.FormatInt(deadline.UnixMilli(), 10))
	h.Set(headerFunctionARN, r.arn)
	h.Set(headerTraceID, traceID())
	h.Set("Content-Type", "application/json")
	inv.handedOut = time.Now()
	_, _ = w.Write(inv.payload)
}

// respond takes an invocation's response, or its error document when
// isError.
func (r *Runtime) respond(isError bool) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		id := req.PathValue("id")
		r.mu.Lock()
		inv, ok := r.inflight[id]
		delete(r.inflight, id)
		r.mu.Unlock()
		if !ok {
			apiError(w, http.StatusBadRequest, "InvalidRequestID", "unknown or already answered request id "+strconv.Quote(id))
			return
		}
		body, err := io.ReadAll(io.LimitReader(req.Body, maxPayload+1))
		res := invokeResult{body: body, duration: time.Since(inv.handedOut)}
		switch {
		case err != nil:
			res.errType, res.body = "Runtime.ResponseReadError", fmt.Appendf(nil, `{"errorMessage":%q}`, err.Error())
		case len(body) > maxPayload:
			res.errType, res.body = "Function.ResponseSizeTooLarge", []byte(`{"errorMessage":"response larger than 6 MB"}`)
		case isError:
			if res.errType = req.Header.Get(headerErrorType); res.errType == "" {
				res.errType = "Unhandled"
			}
		}
		inv.result <- res
		if len(body) > maxPayload {
			apiError(w, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", "response larger than 6 MB")
			return
		}
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, `{"status":"OK"}`)
	}
}

func (r *Runtime) initError(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(req.Body, maxPayload))
	typ := req.Header.Get(headerErrorType)
	if typ == "" {
		typ = "Unhandled"
	}
	r.endInit(InitResult{}, &InitError{Type: typ, Body: string(body)})
	w.WriteHeader(http.StatusAccepted)
	_, _ = io.WriteString(w, `{"status":"OK"}`)
}

func apiError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"errorType": typ, "errorMessage": msg})
}

// Invoke hands payload to the function as its next event and returns the
// response. A function error (posted to /error) comes back as an
// *InvokeError with status 200 and the error document, as the emulator
// answers it. The first Invoke may be called before the init phase ended:
// the event waits for the first /next.
func (r *Runtime) Invoke(ctx context.Context, payload []byte) ([]byte, time.Duration, error) {
	inv := &invocation{id: newID(), payload: payload, result: make(chan invokeResult, 1)}
	select {
	case r.events <- inv:
	case <-ctx.Done():
		return nil, 0, fmt.Errorf("invoke: %w", ctx.Err())
	}
	select {
	case res := <-inv.result:
		if res.errType != "" {
			return res.body, res.duration, &InvokeError{Status: http.StatusOK, Body: string(res.body)}
		}
		return res.body, res.duration, nil
	case <-r.done:
		return nil, 0, fmt.Errorf("invoke: bootstrap exited (%v): %s", r.waited, tail(r.out.String(), 2000))
	case <-ctx.Done():
		return nil, 0, fmt.Errorf("invoke: %w", ctx.Err())
	}
}

// PeakRSSKiB reads the bootstrap's peak resident set size (VmHWM) so far.
func (r *Runtime) PeakRSSKiB() (int64, error) {
	select {
	case <-r.done:
		return 0, errors.New("bootstrap has exited")
	default:
	}
	return vmHWM(r.cmd.Process.Pid)
}

// Output is everything the function printed so far.
func (r *Runtime) Output() string { return r.out.String() }

// Stop kills the bootstrap (Lambda freezes and then kills an environment
// without extensions; nothing is flushed at shutdown) and closes the API.
func (r *Runtime) Stop() {
	if r == nil {
		return
	}
	r.stopped.Do(func() {
		close(r.stop)
		_ = r.cmd.Process.Kill()
		<-r.done
		_ = r.srv.Close()
	})
}

// newID is a random request id in the UUID form Lambda uses.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// traceID is an X-Ray trace header, not sampled.
func traceID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	var p [8]byte
	_, _ = rand.Read(p[:])
	return fmt.Sprintf("Root=1-%08x-%s;Parent=%s;Sampled=0", time.Now().Unix(), hex.EncodeToString(b[:]), hex.EncodeToString(p[:]))
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
