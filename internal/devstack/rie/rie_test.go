package rie_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/zsmseven/backend/internal/devstack/rie"
)

func TestParseReports(t *testing.T) {
	out := "START RequestId: a Version: $LATEST\nEND RequestId: a\n" +
		"REPORT RequestId: a\tInit Duration: 12.34 ms\tDuration: 5.50 ms\tBilled Duration: 6 ms\tMemory Size: 128 MB\tMax Memory Used: 128 MB\t\n" +
		"noise\nREPORT RequestId: b\tDuration: 1.25 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB\tMax Memory Used: 128 MB\t\n"
	got := rie.ParseReports(out)
	want := []rie.Report{
		{RequestID: "a", Init: 12340 * time.Microsecond, Duration: 5500 * time.Microsecond, MaxMemoryUsedMB: 128},
		{RequestID: "b", Duration: 1250 * time.Microsecond, MaxMemoryUsedMB: 128},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("report %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestRunsBootstrapUnderEmulator(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the emulator")
	}
	ctx := context.Background()
	dir := t.TempDir()
	emu, err := rie.BuildEmulator(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	boot, err := rie.BuildBootstrap(ctx, "./testdata/hello", dir+"/hello/bootstrap")
	if err != nil {
		t.Fatal(err)
	}
	f, err := rie.Start(ctx, rie.Options{Emulator: emu, Bootstrap: boot, Env: []string{"GREETING=hi"}})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	got, err := f.Invoke(ctx, []byte(`{"name":"zsm"}`))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != `{"message":"hi, zsm"}` {
		t.Errorf("response %s", got)
	}
	_, err = f.Invoke(ctx, []byte(`{"fail":true}`))
	var ie *rie.InvokeError
	if !errors.As(err, &ie) || !strings.Contains(ie.Body, "asked to fail") {
		t.Errorf("failing invoke: %v", err)
	}
	reps := f.WaitReports(2, 5*time.Second)
	if len(reps) != 2 || reps[0].Init <= 0 || reps[1].Init != 0 {
		t.Fatalf("reports %+v\noutput:\n%s", reps, f.Output())
	}
	rss, err := f.PeakRSSKiB()
	if err != nil || rss <= 0 {
		t.Errorf("peak RSS %d: %v", rss, err)
	}
	cold, ok := f.ColdStart()
	if !ok || len(f.Walls()) != 2 {
		t.Errorf("walls %v", f.Walls())
	}
	t.Logf("hello: emulator Init Duration %v, cold start %v, peak RSS %d KiB", reps[0].Init, cold, rss)
}
