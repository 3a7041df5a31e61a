package rie_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zsmseven/backend/internal/devstack/rie"
)

// TestMain lets the test binary act as a bootstrap speaking the Runtime API
// by hand (RIE_TEST_CLIENT names the script), so the API is checked with a
// client other than aws-lambda-go.
func TestMain(m *testing.M) {
	if script := os.Getenv("RIE_TEST_CLIENT"); script != "" {
		if err := runClient(script, "http://"+os.Getenv("AWS_LAMBDA_RUNTIME_API")+"/2018-06-01"); err != nil {
			fmt.Println("client:", err)
			os.Exit(3)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runClient(script, api string) error {
	switch script {
	case "exit":
		fmt.Println("boom at init")
		os.Exit(4)
	case "init-error":
		req, _ := http.NewRequest(http.MethodPost, api+"/runtime/init/error", strings.NewReader(`{"errorMessage":"bad config","errorType":"ConfigError"}`))
		req.Header.Set("Lambda-Runtime-Function-Error-Type", "Runtime.ConfigError")
		if err := expect(req, http.StatusAccepted); err != nil {
			return err
		}
		os.Exit(1)
	case "protocol":
		return protocol(api)
	}
	return fmt.Errorf("unknown script %q", script)
}

// protocol answers the first event with the headers it came with, checks
// that unknown and repeated request ids are refused, and posts the second
// event's payload to /error.
func protocol(api string) error {
	id, hdr, body, err := next(api)
	if err != nil {
		return err
	}
	seen := map[string]string{"payload": string(body)}
	for _, k := range []string{"Lambda-Runtime-Aws-Request-Id", "Lambda-Runtime-Deadline-Ms", "Lambda-Runtime-Invoked-Function-Arn", "Lambda-Runtime-Trace-Id"} {
		seen[k] = hdr.Get(k)
	}
	seen["LAMBDA_ENV"] = os.Getenv("AWS_LAMBDA_FUNCTION_NAME") + " " + os.Getenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") + " " + os.Getenv("AWS_LAMBDA_FUNCTION_VERSION") + " " + os.Getenv("AWS_REGION")
	req, _ := http.NewRequest(http.MethodPost, api+"/runtime/invocation/not-a-request/response", strings.NewReader(`{}`))
	if err := expect(req, http.StatusBadRequest); err != nil {
		return fmt.Errorf("unknown id: %w", err)
	}
	b, _ := json.Marshal(seen)
	req, _ = http.NewRequest(http.MethodPost, api+"/runtime/invocation/"+id+"/response", strings.NewReader(string(b)))
	if err := expect(req, http.StatusAccepted); err != nil {
		return err
	}
	req, _ = http.NewRequest(http.MethodPost, api+"/runtime/invocation/"+id+"/response", strings.NewReader(`{}`))
	if err := expect(req, http.StatusBadRequest); err != nil {
		return fmt.Errorf("second answer: %w", err)
	}
	id, _, body, err = next(api)
	if err != nil {
		return err
	}
	req, _ = http.NewRequest(http.MethodPost, api+"/runtime/invocation/"+id+"/error", strings.NewReader(string(body)))
	req.Header.Set("Lambda-Runtime-Function-Error-Type", "Function.Test")
	if err := expect(req, http.StatusAccepted); err != nil {
		return err
	}
	_, _, _, err = next(api) // blocks until the runtime is stopped
	return err
}

func next(api string) (string, http.Header, []byte, error) {
	resp, err := http.Get(api + "/runtime/invocation/next")
	if err != nil {
		return "", nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return "", nil, nil, fmt.Errorf("next: %d %v", resp.StatusCode, err)
	}
	return resp.Header.Get("Lambda-Runtime-Aws-Request-Id"), resp.Header, b, nil
}

func expect(req *http.Request, status int) error {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		return fmt.Errorf("%s %s: status %d, want %d: %s", req.Method, req.URL.Path, resp.StatusCode, status, b)
	}
	return nil
}

func startSelf(t *testing.T, script string) *rie.Runtime {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	r, err := rie.StartRuntime(context.Background(), rie.RuntimeOptions{
		Bootstrap: self, FunctionName: "zsm-test-fn", MemoryMB: 256, TimeoutSeconds: 30, Region: "eu-west-1",
		Env: []string{"RIE_TEST_CLIENT=" + script},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	return r
}

func TestRuntimeAPIProtocol(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := startSelf(t, "protocol")
	before := time.Now()
	body, _, err := r.Invoke(ctx, []byte(`{"n":1}`))
	if err != nil {
		t.Fatalf("%v\n%s", err, r.Output())
	}
	init, err := r.WaitInit(ctx)
	if err != nil || init.Duration <= 0 || init.PeakRSSKiB <= 0 {
		t.Errorf("init %+v, %v", init, err)
	}
	var seen map[string]string
	if err := json.Unmarshal(body, &seen); err != nil {
		t.Fatalf("response %s: %v", body, err)
	}
	if seen["payload"] != `{"n":1}` {
		t.Errorf("payload %q", seen["payload"])
	}
	if seen["LAMBDA_ENV"] != "zsm-test-fn 256 $LATEST eu-west-1" {
		t.Errorf("environment %q", seen["LAMBDA_ENV"])
	}
	if len(seen["Lambda-Runtime-Aws-Request-Id"]) != 36 {
		t.Errorf("request id %q", seen["Lambda-Runtime-Aws-Request-Id"])
	}
	if seen["Lambda-Runtime-Invoked-Function-Arn"] != "arn:aws:lambda:eu-west-1:000000000000:function:zsm-test-fn" {
		t.Errorf("function ARN %q", seen["Lambda-Runtime-Invoked-Function-Arn"])
	}
	if !strings.HasPrefix(seen["Lambda-Runtime-Trace-Id"], "Root=1-") {
		t.Errorf("trace id %q", seen["Lambda-Runtime-Trace-Id"])
	}
	ms, err := strconv.ParseInt(seen["Lambda-Runtime-Deadline-Ms"], 10, 64)
	if deadline := time.UnixMilli(ms); err != nil || deadline.Before(before.Add(29*time.Second)) || deadline.After(time.Now().Add(30*time.Second)) {
		t.Errorf("deadline %q, want about 30 s from now", seen["Lambda-Runtime-Deadline-Ms"])
	}

	body, _, err = r.Invoke(ctx, []byte(`{"errorMessage":"failed","errorType":"Test"}`))
	var ie *rie.InvokeError
	if !errors.As(err, &ie) || ie.Body != `{"errorMessage":"failed","errorType":"Test"}` || string(body) != ie.Body {
		t.Errorf("function error: %v (%s)", err, body)
	}
}

func TestRuntimeInitFailures(t *testing.T) {
	for _, tc := range []struct{ script, typ, body string }{
		{"init-error", "Runtime.ConfigError", `{"errorMessage":"bad config","errorType":"ConfigError"}`},
		{"exit", "", "boom at init"},
	} {
		t.Run(tc.script, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			r := startSelf(t, tc.script)
			_, err := r.WaitInit(ctx)
			var ie *rie.InitError
			if !errors.As(err, &ie) || ie.Type != tc.typ || !strings.Contains(ie.Body, tc.body) {
				t.Fatalf("init: %v", err)
			}
			if tc.script == "exit" {
				if _, _, err := r.Invoke(ctx, []byte(`{}`)); err == nil || !strings.Contains(err.Error(), "exited") {
					t.Errorf("invoke after exit: %v", err)
				}
			}
		})
	}
}

func TestRuntimeRunsHello(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a bootstrap")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	boot, err := rie.BuildBootstrap(ctx, "./testdata/hello", t.TempDir()+"/hello/bootstrap")
	if err != nil {
		t.Fatal(err)
	}
	r, err := rie.StartRuntime(ctx, rie.RuntimeOptions{Bootstrap: boot, Env: []string{"GREETING=hi"}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	init, err := r.WaitInit(ctx)
	if err != nil {
		t.Fatalf("%v\n%s", err, r.Output())
	}
	if init.Duration <= 0 || init.PeakRSSKiB <= 0 {
		t.Errorf("init %+v", init)
	}
	got, d, err := r.Invoke(ctx, []byte(`{"name":"zsm"}`))
	if err != nil || string(got) != `{"message":"hi, zsm"}` || d <= 0 {
		t.Errorf("invoke: %s in %v: %v", got, d, err)
	}
	_, _, err = r.Invoke(ctx, []byte(`{"fail":true}`))
	var ie *rie.InvokeError
	if !errors.As(err, &ie) || !strings.Contains(ie.Body, "asked to fail") {
		t.Errorf("failing invoke: %v", err)
	}
	rss, err := r.PeakRSSKiB()
	if err != nil || rss < init.PeakRSSKiB {
		t.Errorf("peak RSS %d KiB after invocations (%d at init): %v", rss, init.PeakRSSKiB, err)
	}
	t.Logf("hello: init %v, peak RSS %d KiB at init, %d after", init.Duration, init.PeakRSSKiB, rss)
}
