package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/zsmseven/backend/internal/devstack"
	"github.com/zsmseven/backend/internal/devstack/rie"
	"github.com/zsmseven/backend/pkg/deploy"
)

// helloPkg is the minimal Go Lambda the bootstraps are compared with: it
// starts the runtime and echoes its event (pkg/rie's own test fixture, so
// there is one hello world in the repository).
const helloPkg = "./internal/devstack/rie/testdata/hello"

// helloSDKPkg is hello plus the AWS SDK's share of a service function's
// init: DynamoDB and SQS clients linked, default configuration loaded and
// both clients built before the first event.
const helloSDKPkg = "./internal/devstack/rie/testdata/hellosdk"

// coldStart is one bootstrap's cold starts, measured two ways.
type coldStart struct {
	Name string
	// Init is the init phase as Lambda defines it, measured against the
	// in-process Runtime API (rie.StartRuntime): process start to the first
	// GET /runtime/invocation/next. Median and 90th percentile of Rounds.
	Init, InitP90 time.Duration
	// InitRSSKiB is the peak RSS (VmHWM) at the end of init, PeakRSSKiB
	// after the first invocation (medians).
	InitRSSKiB, PeakRSSKiB int64
	// FirstInvoke is the first invocation's duration at the Runtime API
	// (event handed out to response received), median; it carries the
	// first connections to DynamoDB, SQS and the market-data server.
	FirstInvoke time.Duration

	// Under the emulator (rie.Start), for the record: its REPORT Init
	// Duration (it times only its hand-off to the sandbox) and Max Memory
	// Used (it echoes the configured size), and the previous estimate of
	// the cold start, the first invocation's wall time minus the second's
	// (rie.Function.ColdStart), medians.
	EmulatorInit     time.Duration
	ReportedMemoryMB int
	EmulatorCold     time.Duration

	// Inits is the package initialisation before main (GODEBUG=inittrace=1),
	// by origin.
	Inits []initGroup
	// PkgInits is the same per package.
	PkgInits map[string]pkgInit

	// HostBytes is the size of the host build that was run.
	HostBytes int64
	Rounds    int
}

// invocation is what a function is cold-started with: an event that does
// the function's real work on the local stack.
type invocation struct {
	name, pkg string
	event     func(st *devstack.Stack) ([]byte, error)
	// batch is the SQS batch the event carries (processTicker only).
	batch *events.SQSEvent
}

// coldMemoryMB and coldTimeoutSeconds are the function settings the
// starts run with (the deployed processTicker's timeout).
const (
	coldMemoryMB       = 256
	coldTimeoutSeconds = 180
)

// sample is one round's figures for one function.
type sample struct {
	init, firstInvoke, emulatorInit, emulatorCold time.Duration
	initRSS, peakRSS                              int64
	reportedMemoryMB                              int
}

// measureColdStarts builds the emulator and each bootstrap for the host, and
// cold-starts each `rounds` times against a fresh in-memory local stack
// (dynalite with the sample portfolio, localsqs, the sandbox market data,
// the rules analyst): processTickers queues the portfolio's tickers,
// processTicker processes that batch, analyzePortfolio analyzes it. Each
// round starts every function once against the in-process Runtime API and
// once under the emulator, the functions in turn, so that a slow spell of
// the machine falls on all of them rather than on one; a first, unrecorded
// round brings the binaries into the page cache.
func measureColdStarts(ctx context.Context, rounds int) ([]coldStart, string, error) {
	dir, err := os.MkdirTemp("", "benchreport-")
	if err != nil {
		return nil, "", err
	}
	defer os.RemoveAll(dir)
	emu, err := rie.BuildEmulator(ctx, dir)
	if err != nil {
		return nil, "", err
	}
	st, err := devstack.Start(ctx, devstack.Options{})
	if err != nil {
		return nil, "", fmt.Errorf("local stack: %w", err)
	}
	defer st.Stop()

	// Each processTickers start queues the sample portfolio's tickers under
	// a new run id; each processTicker start takes one run's worth.
	perRun := len(devstack.SampleSymbols)
	var batch events.SQSEvent
	fns := []invocation{
		{name: "hello (reference)", pkg: helloPkg, event: func(*devstack.Stack) ([]byte, error) { return []byte(`{"name":"bench"}`), nil }},
		{name: "hello + AWS SDK (reference)", pkg: helloSDKPkg, event: func(*devstack.Stack) ([]byte, error) { return []byte(`{"name":"bench"}`), nil }},
		{name: "processTickers", pkg: "./lambdas/processtickers",
			event: func(*devstack.Stack) ([]byte, error) { return []byte(`{}`), nil }},
		{name: "processTicker", pkg: "./lambdas/processticker",
			event: func(st *devstack.Stack) ([]byte, error) {
				var err error
				if batch, err = st.SQS.Receive(devstack.QueueName, perRun); err != nil {
					return nil, err
				}
				if len(batch.Records) != perRun {
					return nil, fmt.Errorf("queue holds %d messages, want the %d processTickers queued", len(batch.Records), perRun)
				}
				return json.Marshal(batch)
			},
			batch: &batch,
		},
		{name: "analyzePortfolio", pkg: "./lambdas/analyzeportfolio",
			event: func(*devstack.Stack) ([]byte, error) {
				return []byte(`{"portfolio_name":"ZSM Seven","force":true}`), nil
			}},
	}
	var present []invocation
	var boots []string
	var out []coldStart
	var missing []string
	for _, fn := range fns {
		if _, err := os.Stat(filepath.Join(fn.pkg, "main.go")); err != nil {
			missing = append(missing, fn.name)
			continue
		}
		boot, err := rie.BuildBootstrap(ctx, fn.pkg, filepath.Join(dir, filepath.Base(fn.pkg), "bootstrap"))
		if err != nil {
			return nil, "", err
		}
		info, err := os.Stat(boot)
		if err != nil {
			return nil, "", err
		}
		present, boots = append(present, fn), append(boots, boot)
		out = append(out, coldStart{Name: fn.name, HostBytes: info.Size(), Rounds: rounds})
	}
	samples := make([][]sample, len(present))
	for round := -1; round < rounds; round++ {
		for i, fn := range present {
			direct, err := directOnce(ctx, boots[i], st, fn)
			if err != nil {
				return nil, "", fmt.Errorf("%s: %w", fn.name, err)
			}
			emulated, err := emulatorOnce(ctx, emu, boots[i], st, fn)
			if err != nil {
				return nil, "", fmt.Errorf("%s under the emulator: %w", fn.name, err)
			}
			direct.emulatorInit, direct.emulatorCold, direct.reportedMemoryMB = emulated.emulatorInit, emulated.emulatorCold, emulated.reportedMemoryMB
			if round >= 0 {
				samples[i] = append(samples[i], direct)
			}
		}
	}
	for i, ss := range samples {
		pick := func(f func(sample) time.Duration) []time.Duration {
			var xs []time.Duration
			for _, s := range ss {
				xs = append(xs, f(s))
			}
			return xs
		}
		pickKiB := func(f func(sample) int64) []int64 {
			var xs []int64
			for _, s := range ss {
				xs = append(xs, f(s))
			}
			return xs
		}
		c := &out[i]
		inits := pick(func(s sample) time.Duration { return s.init })
		c.Init, c.InitP90 = median(inits), percentile(inits, 90)
		c.FirstInvoke = median(pick(func(s sample) time.Duration { return s.firstInvoke }))
		c.EmulatorInit = median(pick(func(s sample) time.Duration { return s.emulatorInit }))
		c.EmulatorCold = median(pick(func(s sample) time.Duration { return s.emulatorCold }))
		c.InitRSSKiB = median(pickKiB(func(s sample) int64 { return s.initRSS }))
		c.PeakRSSKiB = median(pickKiB(func(s sample) int64 { return s.peakRSS }))
		if len(ss) > 0 {
			c.ReportedMemoryMB = ss[0].reportedMemoryMB
		}
	}
	for i := range out {
		if out[i].Inits, out[i].PkgInits, err = traceInits(ctx, boots[i], st, 5); err != nil {
			return nil, "", fmt.Errorf("%s: %w", out[i].Name, err)
		}
	}
	note := ""
	if len(missing) > 0 {
		note = fmt.Sprintf("Not measured (no lambdas/<fn>/main.go yet): %v.", missing)
	}
	return out, note, nil
}

// directOnce starts the bootstrap against the in-process Runtime API, times
// its init phase, serves it one event (the first invocation), reads the
// peak RSS after init and after that invocation, and kills it. For
// processTicker the batch is then settled on the local queue, as the event
// source mapping does.
func directOnce(ctx context.Context, boot string, st *devstack.Stack, fn invocation) (sample, error) {
	var m sample
	ev, err := fn.event(st)
	if err != nil {
		return m, err
	}
	env := append(st.EnvList(), "GREETING=hello", deploy.EnvLogLevel+"=warn")
	r, err := rie.StartRuntime(ctx, rie.RuntimeOptions{Bootstrap: boot, Env: env, FunctionName: "zsm-bench-" + filepath.Base(filepath.Dir(boot)),
		Region: st.Env["AWS_REGION"], MemoryMB: coldMemoryMB, TimeoutSeconds: coldTimeoutSeconds})
	if err != nil {
		return m, err
	}
	defer r.Stop()
	ictx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	init, err := r.WaitInit(ictx)
	if err != nil {
		return m, fmt.Errorf("init: %w\n%s", err, tail(r.Output(), 2000))
	}
	m.init, m.initRSS = init.Duration, init.PeakRSSKiB
	resp, d, err := r.Invoke(ictx, ev)
	if fn.batch != nil {
		if serr := settle(st, *fn.batch, resp, err); serr != nil && err == nil {
			err = serr
		}
	}
	if err != nil {
		return m, fmt.Errorf("invoke: %w\n%s", err, tail(r.Output(), 2000))
	}
	m.firstInvoke = d
	if m.peakRSS, err = r.PeakRSSKiB(); err != nil {
		return m, err
	}
	return m, nil
}

// emulatorOnce starts the emulator, invokes the function twice with the
// same event (cold, then warm) and reads the REPORT lines, for the record.
func emulatorOnce(ctx context.Context, emu, boot string, st *devstack.Stack, fn invocation) (sample, error) {
	var m sample
	env := append(st.EnvList(), "GREETING=hello", deploy.EnvLogLevel+"=warn")
	f, err := rie.Start(ctx, rie.Options{Emulator: emu, Bootstrap: boot, Env: env, MemoryMB: coldMemoryMB, TimeoutSeconds: coldTimeoutSeconds})
	if err != nil {
		return m, err
	}
	defer f.Stop()
	ev, err := fn.event(st)
	if err != nil {
		return m, err
	}
	ictx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	var resp []byte
	for range 2 {
		if resp, err = f.Invoke(ictx, ev); err != nil {
			break
		}
	}
	if fn.batch != nil {
		if serr := settle(st, *fn.batch, resp, err); serr != nil && err == nil {
			err = serr
		}
	}
	if err != nil {
		return m, fmt.Errorf("invoke: %w\n%s", err, tail(f.Output(), 2000))
	}
	reps := f.WaitReports(2, 5*time.Second)
	if len(reps) < 2 {
		return m, fmt.Errorf("want 2 REPORT lines:\n%s", tail(f.Output(), 2000))
	}
	var ok bool
	if m.emulatorCold, ok = f.ColdStart(); !ok {
		return m, fmt.Errorf("no cold start measured")
	}
	m.emulatorInit, m.reportedMemoryMB = reps[0].Init, reps[0].MaxMemoryUsedMB
	return m, nil
}

// settle applies processTicker's answer to the batch on the local queue, as
// the event source mapping does; every record must have been processed.
func settle(st *devstack.Stack, ev events.SQSEvent, resp []byte, invokeErr error) error {
	var r events.SQSEventResponse
	if invokeErr == nil {
		if err := json.Unmarshal(resp, &r); err != nil {
			return fmt.Errorf("processTicker response %s: %w", tail(string(resp), 300), err)
		}
	}
	if _, err := st.SQS.Settle(devstack.QueueName, ev, r, invokeErr); err != nil {
		return err
	}
	if len(r.BatchItemFailures) > 0 {
		return fmt.Errorf("processTicker handed back %d of %d records", len(r.BatchItemFailures), len(ev.Records))
	}
	return nil
}

func median[T int64 | time.Duration](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// percentile is the nearest-rank p-th percentile of xs.
func percentile[T int64 | time.Duration](xs []T, p int) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	rank := (p*len(s) + 99) / 100 // ceil(p/100 × n)
	return s[max(rank, 1)-1]
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
