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

	"github.com/zsmseven/backend/pkg/localstack"
	"github.com/zsmseven/backend/pkg/rie"
)

// helloPkg is the minimal Go Lambda the bootstraps are compared with: it
// starts the runtime and echoes its event (pkg/rie's own test fixture, so
// there is one hello world in the repository).
const helloPkg = "./pkg/rie/testdata/hello"

// coldStart is the median of several cold starts of one bootstrap.
type coldStart struct {
	Name string
	// Cold is the cold-start overhead: the first invocation's wall time
	// minus the second's (the same work, warm) — rie.Function.ColdStart.
	// First and Warm are those two wall times.
	Cold, First, Warm time.Duration
	// EmulatorInit is the emulator's own "Init Duration", which times only
	// its hand-off to the sandbox (microseconds): shown, not used.
	EmulatorInit time.Duration
	// ReportedMemoryMB is the emulator's "Max Memory Used" (it echoes the
	// configured memory size); PeakRSSKiB the bootstrap's real peak RSS
	// (VmHWM), median.
	ReportedMemoryMB int
	PeakRSSKiB       int64
	// HostBytes is the size of the host build the emulator ran.
	HostBytes int64
	Rounds    int
}

// invocation is what a function is cold-started with: an event that does
// the function's real work on the local stack.
type invocation struct {
	name, pkg string
	event     func(st *localstack.Stack) ([]byte, error)
	// batch is the SQS batch the event carries (processTicker only).
	batch *events.SQSEvent
}

// measureColdStarts builds the emulator and each bootstrap for the host, and
// cold-starts each `rounds` times against a fresh in-memory local stack
// (dynalite with the sample portfolio, localsqs, the sandbox market data,
// the rules analyst): processTickers queues the portfolio's tickers,
// processTicker processes that batch, analyzePortfolio analyzes it.
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
	st, err := localstack.Start(ctx, localstack.Options{})
	if err != nil {
		return nil, "", fmt.Errorf("local stack: %w", err)
	}
	defer st.Stop()

	// Each processTickers round queues the sample portfolio's tickers under
	// a new run id; each processTicker round takes one run's worth.
	perRun := len(localstack.SampleSymbols)
	var batch events.SQSEvent
	fns := []invocation{
		{name: "hello (reference)", pkg: helloPkg, event: func(*localstack.Stack) ([]byte, error) { return []byte(`{"name":"bench"}`), nil }},
		{name: "processTickers", pkg: "./lambdas/processtickers",
			event: func(*localstack.Stack) ([]byte, error) { return []byte(`{}`), nil }},
		{name: "processTicker", pkg: "./lambdas/processticker",
			event: func(st *localstack.Stack) ([]byte, error) {
				var err error
				if batch, err = st.SQS.Receive(localstack.QueueName, perRun); err != nil {
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
			event: func(*localstack.Stack) ([]byte, error) {
				return []byte(`{"portfolio_name":"ZSM Seven","force":true}`), nil
			}},
	}
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
		cs := coldStart{Name: fn.name, HostBytes: info.Size(), Rounds: rounds}
		var colds, firsts, warms, inits []time.Duration
		var rss []int64
		for range rounds {
			m, err := coldStartOnce(ctx, emu, boot, st, fn)
			if err != nil {
				return nil, "", fmt.Errorf("%s: %w", fn.name, err)
			}
			colds, firsts, warms, inits = append(colds, m.Cold), append(firsts, m.First), append(warms, m.Warm), append(inits, m.EmulatorInit)
			rss = append(rss, m.PeakRSSKiB)
			cs.ReportedMemoryMB = m.ReportedMemoryMB
		}
		cs.Cold, cs.First, cs.Warm, cs.EmulatorInit, cs.PeakRSSKiB = median(colds), median(firsts), median(warms), median(inits), median(rss)
		out = append(out, cs)
	}
	note := ""
	if len(missing) > 0 {
		note = fmt.Sprintf("Not measured (no lambdas/<fn>/main.go yet): %v.", missing)
	}
	return out, note, nil
}

// coldStartOnce starts the emulator, invokes the function twice with the
// same event (cold, then warm), reads the REPORT lines and the peak RSS, and
// stops it. For processTicker the batch is then settled on the local queue,
// as the event source mapping does.
func coldStartOnce(ctx context.Context, emu, boot string, st *localstack.Stack, fn invocation) (coldStart, error) {
	var m coldStart
	env := append(st.EnvList(), "GREETING=hello", "LOG_LEVEL=warn")
	f, err := rie.Start(ctx, rie.Options{Emulator: emu, Bootstrap: boot, Env: env, MemoryMB: 256, TimeoutSeconds: 180})
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
	if m.Cold, ok = f.ColdStart(); !ok {
		return m, fmt.Errorf("no cold start measured")
	}
	walls := f.Walls()
	m.First, m.Warm = walls[0], walls[1]
	m.EmulatorInit, m.ReportedMemoryMB = reps[0].Init, reps[0].MaxMemoryUsedMB
	if m.PeakRSSKiB, err = f.PeakRSSKiB(); err != nil {
		return m, err
	}
	return m, nil
}

// settle applies processTicker's answer to the batch on the local queue, as
// the event source mapping does; every record must have been processed.
func settle(st *localstack.Stack, ev events.SQSEvent, resp []byte, invokeErr error) error {
	var r events.SQSEventResponse
	if invokeErr == nil {
		if err := json.Unmarshal(resp, &r); err != nil {
			return fmt.Errorf("processTicker response %s: %w", tail(string(resp), 300), err)
		}
	}
	if _, err := st.SQS.Settle(localstack.QueueName, ev, r, invokeErr); err != nil {
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

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
