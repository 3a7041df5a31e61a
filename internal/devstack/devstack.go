// Package devstack assembles the service's local stack for `zsm run`, `zsm
// status`, `zsm invoke` and the end-to-end tests, with no AWS account and no
// keys: dynalite for DynamoDB (the tables of pkg/deploy, the sample
// portfolio — or a seed file's — in the shared ones), localsqs for the ticker
// and analysis queues, the sandbox market-data server when no Polygon key is
// set (on the night's clock, its grouped answer carrying every symbol held),
// and the environment the functions read — the same variables the stack sets
// on AWS.
package devstack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/zsmseven/backend/internal/devstack/dynalite"
	"github.com/zsmseven/backend/internal/devstack/fakepolygon"
	"github.com/zsmseven/backend/internal/devstack/localsqs"
	"github.com/zsmseven/backend/pkg/config"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/portfoliodb"
)

// DefaultDataDir is where `zsm run` keeps its DynamoDB data between runs.
const DefaultDataDir = ".local/dynalite"

// DefaultLogDir is where `zsm run` writes the functions' JSON logs.
const DefaultLogDir = ".local/logs"

// Queue names of the local stage, as the stack names them.
var (
	QueueName = deploy.TickerQueueName(deploy.LocalStage)
	DLQName   = deploy.TickerDLQName(deploy.LocalStage)
	// AnalysisQueueName is the standard queue of the analysis fan-out; a
	// message received AnalysisMaxReceiveCount times moves to its
	// dead-letter list (localsqs.DeadLetters), the local stand-in for
	// portfolio-analysis-dlq-local.
	AnalysisQueueName = deploy.AnalysisQueueName(deploy.LocalStage)
)

// VisibilityTimeout is the local ticker queue's, as deployed: 6 ×
// processTicker's timeout (infra/queue.go, decision 0001).
var VisibilityTimeout = 6 * deploy.ProcessTicker.Timeout

// AnalysisVisibilityTimeout is the local analysis queue's, as deployed:
// deploy.AnalysisVisibilityFactor × analyzePortfolio's timeout
// (infra/analysisqueue.go).
var AnalysisVisibilityTimeout = time.Duration(deploy.AnalysisVisibilityFactor) * deploy.AnalyzePortfolio.Timeout

// MaxReceiveCount is the ticker queue's redrive policy, as deployed
// (infra/queue.go); the analysis queue's is deploy.AnalysisMaxReceiveCount.
const MaxReceiveCount = localsqs.DefaultMaxReceiveCount

// Options configure Start.
type Options struct {
	// DataDir keeps DynamoDB data on disk under this directory; "" holds it
	// in memory for the life of the stack.
	DataDir string
	// Host is the caller's environment (os.LookupEnv): the contract's
	// settings and keys are taken from it (hostVars). Nil means an empty
	// environment.
	Host config.Lookup
	// NoQueue skips localsqs (status and invoke need only DynamoDB).
	NoQueue bool
	// RedeliverAtOnce shortens the queues' waits as `zsm run` does: a
	// message handed back is received again at once instead of after its
	// visibility timeout (localsqs.Options.RedeliverAtOnce). Without it the
	// queues keep the deployed timeouts on the real clock.
	RedeliverAtOnce bool
	// FunctionsDynamoDB, when set, gives the DynamoDB endpoint of the
	// functions' environment (AWS_ENDPOINT_URL_DYNAMODB) from dynalite's:
	// tests put a fault-injecting proxy there. The stack's own client (DB)
	// talks to dynalite.
	FunctionsDynamoDB func(dynalite string) string
	// NoMarketData skips the sandbox even without a Polygon key.
	NoMarketData bool
	// NoSeed leaves the shared tables as they are (readers such as status).
	NoSeed bool
	// Seed, when set, replaces the portfolios of the shared tables with
	// these (`zsm run --seed FILE`, parsed by ParseSeed) instead of adding
	// the sample portfolio when absent.
	Seed []SeedPortfolio
	// Now is the sandbox's clock: the last session it has published, as a
	// night's Polygon would (`zsm run --date`). Nil is time.Now.
	Now func() time.Time
	// Sandbox adds options to the sandbox (tests: a publish delay, splits,
	// halts). Key, Now and UniverseFunc are the stack's.
	Sandbox fakepolygon.Options
	// DynaliteOutput receives dynalite's own output (nil discards it).
	DynaliteOutput *os.File
}

// Stack is a running local stack. Stop ends everything it started.
type Stack struct {
	// Stage is deploy.LocalStage.
	Stage string
	// Dynalite is the DynamoDB server; DB a client for it.
	Dynalite *dynalite.Server
	DB       *dynamodb.Client
	// SQS is the local queue server (nil with NoQueue); QueueURL the ticker
	// queue's URL, AnalysisQueueURL the analysis queue's.
	SQS              *localsqs.Server
	QueueURL         string
	AnalysisQueueURL string
	// Sandbox serves labelled sample market data (the local Polygon with its
	// synthetic series); nil when the host gives a Polygon key
	// (deploy.EnvPolygonAPIKey). SandboxKey is the key it accepts.
	Sandbox    *fakepolygon.Server
	SandboxKey string
	// Env is the functions' environment: the configuration contract plus the
	// AWS_* variables that point the SDK at the local servers.
	Env map[string]string
	// SampleDrift, when not "", says that the kept store's sample portfolio
	// is not the built-in one (SampleDrift): it was seeded once, before
	// SampleSymbols changed.
	SampleDrift string
}

// ErrDataDirInUse suggests why dynalite could not open a data directory.
var ErrDataDirInUse = errors.New("dynalite could not open its data directory (is another zsm using it?)")

// Start starts dynalite (in memory or on DataDir), creates the four tables
// and seeds the sample portfolio when absent, then localsqs and the sandbox
// as configured. On any error everything already started is stopped.
func Start(ctx context.Context, opts Options) (_ *Stack, err error) {
	host := opts.Host
	if host == nil {
		host = func(string) (string, bool) { return "", false }
	}
	s := &Stack{Stage: deploy.LocalStage}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	out := opts.DynaliteOutput
	if out == nil {
		// Keep dynalite's own words for the error message if it fails.
		if out, err = os.CreateTemp("", "zsm-dynalite-*.log"); err != nil {
			return nil, fmt.Errorf("dynalite output file: %w", err)
		}
		defer func() { out.Close(); os.Remove(out.Name()) }()
	}
	// dynalite opens a data directory lazily: a directory it cannot use (in
	// use by another zsm, or a LevelDB binding that does not load) shows up
	// as a failed first request, so both steps explain themselves the same way.
	explain := func(err error) error {
		said := dynaliteSaid(out)
		if opts.DataDir != "" {
			return fmt.Errorf("%w: %s: %v%s (or run with --memory)", ErrDataDirInUse, opts.DataDir, err, said)
		}
		return fmt.Errorf("%w%s", err, said)
	}
	if s.Dynalite, err = dynalite.Start(ctx, dynalite.Options{Path: opts.DataDir, Stderr: out}); err != nil {
		return nil, explain(err)
	}
	s.DB = dynalite.Client(s.Dynalite.Endpoint)
	if err := dynalite.CreateTables(ctx, s.DB, s.Stage); err != nil {
		return nil, explain(err)
	}
	switch {
	case opts.Seed != nil:
		if err := ReplacePortfolios(ctx, s.DB, s.Stage, opts.Seed); err != nil {
			return nil, explain(err)
		}
	case !opts.NoSeed:
		if _, err := SeedSamplePortfolio(ctx, s.DB, s.Stage); err != nil {
			return nil, explain(err)
		}
		if s.SampleDrift, err = SampleDrift(ctx, s.DB, s.Stage); err != nil {
			return nil, explain(err)
		}
	}
	if !opts.NoQueue {
		// The queues' settings are the deployed ones; records handed back
		// wait them out unless the run shortens it.
		s.SQS, err = localsqs.Start("127.0.0.1:0", localsqs.Options{RedeliverAtOnce: opts.RedeliverAtOnce})
		if err != nil {
			return nil, err
		}
		s.QueueURL = s.SQS.CreateQueueWith(QueueName, localsqs.QueueOptions{VisibilityTimeout: VisibilityTimeout, MaxReceiveCount: MaxReceiveCount})
		s.SQS.CreateQueue(DLQName)
		s.AnalysisQueueURL = s.SQS.CreateQueueWith(AnalysisQueueName,
			localsqs.QueueOptions{VisibilityTimeout: AnalysisVisibilityTimeout, MaxReceiveCount: deploy.AnalysisMaxReceiveCount})
	}
	polygonKey, _ := host(deploy.EnvPolygonAPIKey)
	if polygonKey == "" && !opts.NoMarketData {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("sandbox key: %w", err)
		}
		s.SandboxKey = "sandbox-" + hex.EncodeToString(b[:])
		so := opts.Sandbox
		so.Key, so.Now = s.SandboxKey, opts.Now
		// The grouped answer carries every symbol held in the local tables,
		// as Polygon's carries the whole market.
		db, stage := s.DB, s.Stage
		so.UniverseFunc = func() []string {
			res, err := portfoliodb.NewReader(db, deploy.UserPortfolios.Name(stage), deploy.PortfolioPositions.Name(stage)).ScanSymbols(context.Background())
			if err != nil {
				return nil
			}
			return res.Symbols
		}
		s.Sandbox = fakepolygon.Start(so)
	}
	s.Env = s.buildEnv(host)
	if opts.FunctionsDynamoDB != nil {
		s.Env["AWS_ENDPOINT_URL_DYNAMODB"] = opts.FunctionsDynamoDB(s.Dynalite.Endpoint)
	}
	return s, nil
}

// dynaliteSaid returns what dynalite wrote to f that best explains a failure —
// its first line mentioning an error, else its last line — as
// `: dynalite says "<line>"`, or "" if it wrote nothing.
func dynaliteSaid(f *os.File) string {
	b, err := os.ReadFile(f.Name())
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	pick := strings.TrimSpace(lines[len(lines)-1])
	for _, l := range lines {
		if strings.Contains(l, "Error") {
			pick = strings.TrimSpace(l)
			break
		}
	}
	if pick == "" {
		return ""
	}
	if len(pick) > 200 {
		pick = pick[:200] + "…"
	}
	return ": dynalite says " + strconv.Quote(pick)
}

// Stop ends every server the stack started. It is safe to call twice and on
// a partly started stack.
func (s *Stack) Stop() {
	if s == nil {
		return
	}
	if s.Sandbox != nil {
		s.Sandbox.Close()
		s.Sandbox = nil
	}
	if s.SQS != nil {
		_ = s.SQS.Close()
		s.SQS = nil
	}
	if s.Dynalite != nil {
		s.Dynalite.Stop()
		s.Dynalite = nil
	}
}

// hostVars are the variables a local run takes from the caller's
// environment: exactly the contract's that the stack does not derive from
// what it creates (deploy.Setting and deploy.HostOnly), for every function
// and every model provider. A variable added to the contract is passed
// through with no edit here.
func hostVars() []deploy.Var {
	var vs []deploy.Var
	seen := map[string]bool{}
	add := func(v deploy.Var) {
		if v.Origin != deploy.FromStack && !seen[v.Name] {
			seen[v.Name] = true
			vs = append(vs, v)
		}
	}
	for _, v := range deploy.Vars() {
		add(v)
	}
	for _, p := range deploy.ModelProviders {
		for _, v := range p.Vars() {
			add(v)
		}
	}
	return vs
}

func (s *Stack) buildEnv(host config.Lookup) map[string]string {
	env := deploy.TableEnv(s.Stage)
	maps.Copy(env, map[string]string{
		deploy.EnvDefaultPortfolio: SamplePortfolio,
		// The AWS SDK's own variables: local endpoints and dummy credentials
		// (dynalite checks that requests are signed, not by whom).
		"AWS_ENDPOINT_URL_DYNAMODB": s.Dynalite.Endpoint,
		"AWS_REGION":                localsqs.Region,
		"AWS_ACCESS_KEY_ID":         "local",
		"AWS_SECRET_ACCESS_KEY":     "local",
		"AWS_EC2_METADATA_DISABLED": "true",
	})
	if s.SQS != nil {
		env["AWS_ENDPOINT_URL_SQS"] = s.SQS.Endpoint()
		env[deploy.EnvTickerQueueURL] = s.QueueURL
		// processTicker re-queues a record that failed transiently to the
		// queue's tail, or dead-letters it itself after its last attempt.
		env[deploy.EnvTickerDLQURL] = s.SQS.QueueURL(DLQName)
		env[deploy.EnvTickerMessageGroups] = strconv.Itoa(deploy.DefaultTickerMessageGroups)
		env[deploy.EnvAnalysisQueueURL] = s.AnalysisQueueURL
	}
	for _, v := range hostVars() {
		if val, ok := host(v.Name); ok && val != "" {
			env[v.Name] = val
		}
	}
	if s.Sandbox != nil {
		env[deploy.EnvPolygonBaseURL] = s.Sandbox.URL
		env[deploy.EnvPolygonAPIKey] = s.SandboxKey
		if _, set := host(deploy.EnvPolygonCallsPerMinute); !set {
			env[deploy.EnvPolygonCallsPerMinute] = "0" // the sandbox has no rate limit
		}
	}
	return env
}

// Lookup reads the functions' environment (a config.Lookup).
func (s *Stack) Lookup(key string) (string, bool) {
	v, ok := s.Env[key]
	return v, ok
}

// UsingSandbox reports whether market data comes from the sandbox.
func (s *Stack) UsingSandbox() bool { return s.Sandbox != nil }

// CallsPerMinute is the Polygon pacing the functions will apply (0 = none).
func (s *Stack) CallsPerMinute() int {
	v, ok := s.Env[deploy.EnvPolygonCallsPerMinute]
	if !ok {
		return deploy.DefaultPolygonCallsPerMinute // the functions' default: Polygon's free plan
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return deploy.DefaultPolygonCallsPerMinute
	}
	return n
}

// awsProcessVars are read by the AWS SDK from the process environment
// (config.LoadDefaultConfig), not through a config.Lookup, so in-process runs
// must set them; the others would point the SDK at a real account.
var awsProcessVars = []string{
	"AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_SQS", "AWS_REGION", "AWS_ACCESS_KEY_ID",
	"AWS_SECRET_ACCESS_KEY", "AWS_EC2_METADATA_DISABLED",
}

var awsClearedVars = []string{"AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_DEFAULT_REGION"}

// ApplyProcessEnv sets the AWS SDK's variables of the stack in the process
// environment, so handlers built in process talk to the local servers with
// dummy credentials, and returns a function that restores the previous values.
// Not safe to use from parallel tests.
func (s *Stack) ApplyProcessEnv() (restore func()) {
	type saved struct {
		v  string
		ok bool
	}
	prev := map[string]saved{}
	set := func(k, v string, unset bool) {
		if _, done := prev[k]; !done {
			old, ok := os.LookupEnv(k)
			prev[k] = saved{old, ok}
		}
		if unset {
			_ = os.Unsetenv(k)
		} else {
			_ = os.Setenv(k, v)
		}
	}
	for _, k := range awsClearedVars {
		set(k, "", true)
	}
	for _, k := range awsProcessVars {
		if v, ok := s.Env[k]; ok {
			set(k, v, false)
		}
	}
	// No shared config or credentials file may add a profile's settings.
	set("AWS_CONFIG_FILE", os.DevNull, false)
	set("AWS_SHARED_CREDENTIALS_FILE", os.DevNull, false)
	return func() {
		for k, p := range prev {
			if p.ok {
				_ = os.Setenv(k, p.v)
			} else {
				_ = os.Unsetenv(k)
			}
		}
	}
}

// EnvList returns the functions' environment as KEY=VALUE lines (for a
// subprocess, e.g. a bootstrap under the emulator), sorted by nothing in
// particular.
func (s *Stack) EnvList() []string {
	out := make([]string, 0, len(s.Env))
	for k, v := range s.Env {
		out = append(out, k+"="+v)
	}
	return out
}
