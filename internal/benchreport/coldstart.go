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
	// Init is the emulator's Init Duration; Duration that of the first
	// (cold) invocation; both medians.
	Init, Duration time.Duration
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
		var inits, durs []time.Duration
		var rss []int64
		for range rounds {
			rep, peak, err := coldStartOnce(ctx, emu, boot, st, fn)
			if err != nil {
				return nil, "", fmt.Errorf("%s: %w", fn.name, err)
			}
			inits, durs, rss = append(inits, rep.Init), append(durs, rep.Duration), append(rss, peak)
			cs.ReportedMemoryMB = rep.MaxMemoryUsedMB
		}
		cs.Init, cs.Duration, cs.PeakRSSKiB = median(inits), median(durs), median(rss)
		out = append(out, cs)
	}
	note := ""
	if len(missing) > 0 {
		note = fmt.Sprintf("Not measured (no lambdas/<fn>/main.go yet): %v.", missing)
	}
	return out, note, nil
}

// coldStartOnce starts the emulator, invokes the function once, reads the
// REPORT line and the peak RSS, and stops it. For processTicker the batch is
// settled on the local queue (as the event source mapping does) so the next
// round finds the same messages again.
func coldStartOnce(ctx context.Context, emu, boot string, st *localstack.Stack, fn invocation) (rie.Report, int64, error) {
	env := append(st.EnvList(), "GREETING=hello", "LOG_LEVEL=warn")
	f, err := rie.Start(ctx, rie.Options{Emulator: emu, Bootstrap: boot, Env: env, MemoryMB: 256, TimeoutSeconds: 180})
	if err != nil {
		return rie.Report{}, 0, err
	}
	defer f.Stop()
	ev, err := fn.event(st)
	if err != nil {
		return rie.Report{}, 0, err
	}
	ictx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	resp, err := f.Invoke(ictx, ev)
	if fn.batch != nil {
		if serr := settle(st, *fn.batch, resp, err); serr != nil && err == nil {
			err = serr
		}
	}
	if err != nil {
		return rie.Report{}, 0, fmt.Errorf("invoke: %w\n%s", err, tail(f.Output(), 2000))
	}
	// The REPORT line follows the response by a moment.
	deadline := time.Now().Add(5 * time.Second)
	for len(f.Reports()) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	reps := f.Reports()
	if len(reps) == 0 || reps[0].Init <= 0 {
		return rie.Report{}, 0, fmt.Errorf("no REPORT with Init Duration:\n%s", tail(f.Output(), 2000))
	}
	peak, err := f.PeakRSSKiB()
	if err != nil {
		return rie.Report{}, 0, err
	}
	return reps[0], peak, nil
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
