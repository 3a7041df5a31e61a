package devstack_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/zsmseven/backend/internal/devstack"
	"github.com/zsmseven/backend/internal/devstack/localsqs"
	"github.com/zsmseven/backend/pkg/config"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/portfoliodb"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func count(t *testing.T, db *dynamodb.Client, table string) int32 {
	t.Helper()
	out, err := db.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(table), Select: "COUNT"})
	if err != nil {
		t.Fatal(err)
	}
	return out.Count
}

func TestStartInMemorySeedsAndBuildsEnv(t *testing.T) {
	ctx := context.Background()
	s, err := devstack.Start(ctx, devstack.Options{Host: env(map[string]string{"XAI_MODEL": "grok-x", "API_KEYS_SECRET_ARN": "arn:nope"})})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()

	// The sample portfolio reads back through the shared-table reader.
	r := portfoliodb.NewReader(s.DB, deploy.UserPortfolios.Name(s.Stage), deploy.PortfolioPositions.Name(s.Stage))
	_, pos, invalid, err := r.Holdings(ctx, devstack.SamplePortfolio)
	if err != nil {
		t.Fatal(err)
	}
	var syms []string
	for _, p := range pos {
		syms = append(syms, p.Symbol)
	}
	if got := strings.Join(syms, ","); got != "AAPL,AMZN,GOOGL,META,MSFT,NVDA,TSLA" || len(invalid) != 0 {
		t.Errorf("holdings %s invalid %v", got, invalid)
	}
	// Seeding again writes nothing.
	wrote, err := devstack.SeedSamplePortfolio(ctx, s.DB, s.Stage)
	if err != nil || wrote {
		t.Errorf("second seed wrote %v err %v", wrote, err)
	}
	if n := count(t, s.DB, deploy.PortfolioPositions.Name(s.Stage)); n != 7 {
		t.Errorf("%d positions after two seeds, want 7", n)
	}

	want := map[string]string{
		"STAGE": "local", "TICKER_DATA_TABLE": "ticker-data-local", "DAILY_BARS_TABLE": "daily-bars-local", "PORTFOLIO_ANALYSES_TABLE": "portfolio-analyses-local",
		"USER_PORTFOLIOS_TABLE": "user-portfolios-local", "PORTFOLIO_POSITIONS_TABLE": "portfolio-positions-local",
		"TICKER_QUEUE_URL": s.SQS.QueueURL(devstack.QueueName), "TICKER_DLQ_URL": s.SQS.QueueURL(devstack.DLQName), "AWS_ENDPOINT_URL_DYNAMODB": s.Dynalite.Endpoint,
		"AWS_ENDPOINT_URL_SQS": s.SQS.Endpoint(), "POLYGON_BASE_URL": s.Sandbox.URL, "POLYGON_API_KEY": s.SandboxKey,
		"POLYGON_CALLS_PER_MINUTE": "0", "XAI_MODEL": "grok-x", "DEFAULT_PORTFOLIO": "ZSM Seven",
		"ANALYSIS_QUEUE_URL": s.SQS.QueueURL("portfolio-analysis-queue-local"), "ANALYSIS_RESERVATIONS_TABLE": "analysis-reservations-local",
	}
	for k, v := range want {
		if got, _ := s.Lookup(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	// Only the listed variables pass through: a secret ARN would send the
	// functions to a real account.
	if _, ok := s.Lookup("API_KEYS_SECRET_ARN"); ok {
		t.Error("API_KEYS_SECRET_ARN passed through")
	}
	if !s.UsingSandbox() || s.CallsPerMinute() != 0 {
		t.Errorf("sandbox %v pace %d", s.UsingSandbox(), s.CallsPerMinute())
	}

	restore := s.ApplyProcessEnv()
	if os.Getenv("AWS_ENDPOINT_URL_DYNAMODB") != s.Dynalite.Endpoint || os.Getenv("AWS_ACCESS_KEY_ID") != "local" {
		t.Error("process environment not applied")
	}
	restore()
	if os.Getenv("AWS_ENDPOINT_URL_DYNAMODB") == s.Dynalite.Endpoint {
		t.Error("process environment not restored")
	}

	endpoint := s.Dynalite.Endpoint
	s.Stop()
	s.Stop() // twice is harmless
	if resp, err := http.Get(endpoint); err == nil {
		resp.Body.Close()
		t.Error("dynalite still answers after Stop")
	}
}

func TestPolygonKeyDisablesSandbox(t *testing.T) {
	s, err := devstack.Start(context.Background(), devstack.Options{NoQueue: true,
		Host: env(map[string]string{"POLYGON_API_KEY": "real", "POLYGON_BASE_URL": "https://example.test"})})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if s.UsingSandbox() || s.SQS != nil {
		t.Error("sandbox or queue started")
	}
	if v, _ := s.Lookup("POLYGON_BASE_URL"); v != "https://example.test" {
		t.Errorf("POLYGON_BASE_URL %q", v)
	}
	if _, ok := s.Lookup("POLYGON_CALLS_PER_MINUTE"); ok || s.CallsPerMinute() != 5 {
		t.Errorf("pacing %d, want the default 5", s.CallsPerMinute())
	}
}

func TestDataDirKeepsData(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "dynalite")
	s, err := devstack.Start(ctx, devstack.Options{DataDir: dir, NoQueue: true, NoMarketData: true})
	if err != nil {
		t.Fatal(err)
	}
	// A second stack on the same directory cannot open it while the first runs.
	s2, err := devstack.Start(ctx, devstack.Options{DataDir: dir, NoQueue: true, NoMarketData: true})
	if err == nil {
		s2.Stop()
		t.Error("second stack opened a data directory in use")
	} else if !errors.Is(err, devstack.ErrDataDirInUse) || !strings.Contains(err.Error(), "--memory") {
		t.Errorf("error %q does not explain itself", err)
	}
	t.Log(err)
	s.Stop()
	s, err = devstack.Start(ctx, devstack.Options{DataDir: dir, NoQueue: true, NoMarketData: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if n := count(t, s.DB, deploy.PortfolioPositions.Name(s.Stage)); n != 7 {
		t.Errorf("%d positions after restart, want 7", n)
	}
}

func TestParseSeed(t *testing.T) {
	good := `{"portfolios":[{"name":"ZSM Seven","positions":[{"ticker":"AAPL","quantity":10,"costBasis":1502.50},{"ticker":"brk-b"}]},
		{"name":"Growth","positions":[{"ticker":"NVDA","quantity":0}]}]}`
	got, err := devstack.ParseSeed([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "ZSM Seven" || got[0].Positions[1].Ticker != "BRK.B" || *got[0].Positions[0].CostBasis != 1502.5 ||
		got[0].Positions[1].Quantity != nil || *got[1].Positions[0].Quantity != 0 {
		t.Fatalf("parsed %+v", got)
	}
	for _, c := range []struct{ file, want string }{
		{`{"portfolios":[{"name":"A","positions":[{"ticker":"AAPL"}]},{"name":"B","positions":[{"ticker":"BRK-"}]}]}`,
			`portfolios[1].positions[0].ticker "BRK-": trailing separator`},
		{``, `not a seed file`},
		{`[]`, `not a seed file`},
		{`{}`, `"portfolios" is missing or empty`},
		{`{"portfolios":[{"name":" ","positions":[{"ticker":"A"}]}]}`, `portfolios[0].name: missing or empty`},
		{`{"portfolios":[{"name":"A","positions":[{"ticker":"A"}]},{"name":"A","positions":[{"ticker":"B"}]}]}`, `portfolios[1].name "A": the same name as portfolios[0]`},
		{`{"portfolios":[{"name":"A","positions":[]}]}`, `portfolios[0].positions: missing or empty`},
		{`{"portfolios":[{"name":"A"}]}`, `portfolios[0].positions: missing or empty`},
		{`{"portfolios":[{"name":"A","positions":[{"quantity":1}]}]}`, `portfolios[0].positions[0].ticker: missing`},
		{`{"portfolios":[{"name":"A","positions":[{"ticker":"A","quantity":-1}]}]}`, `portfolios[0].positions[0].quantity -1: negative`},
		{`{"portfolios":[{"name":"A","positions":[{"ticker":"A","costBasis":"12"}]}]}`, `portfolios[0].positions[0].costBasis: not a number`},
		{`{"portfolios":[{"name":"A","positions":[{"ticker":"A","qty":1}]}]}`, `portfolios[0].positions[0]: unknown field "qty"`},
		{`{"portfolios":[{"name":"A","positions":[{"ticker":"A<b>"}]}]}`, `portfolios[0].positions[0].ticker "A<b>": character '<' not allowed`},
		{`{"portfolios":[{"name":"a\nb","positions":[{"ticker":"A"}]}]}`, `portfolios[0].name: invalid portfolio name "a\nb": control character U+000A`},
		{`{"portfolios":[{"name":"` + strings.Repeat("n", 101) + `","positions":[{"ticker":"A"}]}]}`, `portfolios[0].name: invalid portfolio name "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn"…: longer than 100 characters`},
		{`{"portfolios":[{"name":"a\u2028b","positions":[{"ticker":"A"}]}]}`, `portfolios[0].name: invalid portfolio name "a\u2028b": control character U+2028`},
		{`{"portfolios":[]} {}`, `data after the JSON value`},
	} {
		_, err := devstack.ParseSeed([]byte(c.file))
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.ContainsAny(err.Error(), "\n\r") {
			t.Errorf("ParseSeed(%.60s) = %v, want one line containing %q", c.file, err, c.want)
		}
	}
}

// --seed replaces the local portfolios (the sample included) with the
// file's, in the documented shape the reader reads back.
func TestReplacePortfolios(t *testing.T) {
	ctx := context.Background()
	s, err := devstack.Start(ctx, devstack.Options{NoQueue: true, NoMarketData: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	seed, err := devstack.ParseSeed([]byte(`{"portfolios":[{"name":"Income","positions":[{"ticker":"KO","quantity":100,"costBasis":5900},{"ticker":"BRK B","quantity":2}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := devstack.ReplacePortfolios(ctx, s.DB, s.Stage, seed); err != nil {
		t.Fatal(err)
	}
	r := portfoliodb.NewReader(s.DB, deploy.UserPortfolios.Name(s.Stage), deploy.PortfolioPositions.Name(s.Stage))
	list, err := r.List(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "Income" {
		t.Fatalf("portfolios %+v %v", list, err)
	}
	_, pos, invalid, err := r.Holdings(ctx, "Income")
	if err != nil || len(pos) != 2 || len(invalid) != 0 || pos[0].Symbol != "BRK.B" || *pos[1].Quantity != 100 || *pos[1].CostBasis != 5900 {
		t.Fatalf("holdings %+v %v %v", pos, invalid, err)
	}
	if n := count(t, s.DB, deploy.PortfolioPositions.Name(s.Stage)); n != 2 {
		t.Errorf("%d positions, want the seed's 2 (the sample's removed)", n)
	}
}

// Every variable of the contract that is not the stack's own passes through
// from the caller's environment to the functions (`XAI_RESERVE=30s make
// run`), and reaches the function's configuration; nothing else does.
func TestEveryContractSettingPassesThrough(t *testing.T) {
	host := map[string]string{"NOT_IN_THE_CONTRACT": "x"}
	var settings []deploy.Var
	for _, v := range deploy.Vars() {
		if v.Origin == deploy.FromStack {
			host[v.Name] = "from-the-host" // never taken: the stack names its own
			continue
		}
		settings = append(settings, v)
		switch {
		case v.Kind == deploy.KindEnum:
			host[v.Name] = v.Values[len(v.Values)-1]
		case v.Kind == deploy.KindURL:
			host[v.Name] = "http://127.0.0.1:9/" + strings.ToLower(v.Name)
		case v.Kind == deploy.KindInt || v.Kind == deploy.KindDuration:
			host[v.Name] = v.Max
		default:
			host[v.Name] = "host-" + strings.ToLower(v.Name)
		}
	}
	host[deploy.EnvPolygonCallsPerMinute] = "7"
	s, err := devstack.Start(context.Background(), devstack.Options{Host: env(host)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	for _, v := range settings {
		if got, _ := s.Lookup(v.Name); got != host[v.Name] {
			t.Errorf("%s = %q, want the host's %q", v.Name, got, host[v.Name])
		}
	}
	for _, k := range []string{deploy.EnvStage, deploy.EnvTickerDataTable, "NOT_IN_THE_CONTRACT"} {
		if got, _ := s.Lookup(k); got == host[k] {
			t.Errorf("%s = %q: taken from the host", k, got)
		}
	}
	// It reaches the configuration the function reads.
	c, err := config.LoadAnalyzePortfolio(s.Lookup)
	if err != nil {
		t.Fatal(err)
	}
	if c.Reserve != 5*time.Minute || c.Model.AttemptTimeout != 15*time.Minute {
		t.Errorf("XAI_RESERVE %s, XAI_ATTEMPT_TIMEOUT %s: the host's values did not reach the function", c.Reserve, c.Model.AttemptTimeout)
	}
	pt, err := config.LoadProcessTicker(s.Lookup)
	if err != nil {
		t.Fatal(err)
	}
	if pt.RecordBudget != 15*time.Minute || pt.PolygonCallsPerMinute != 7 {
		t.Errorf("TICKER_RECORD_BUDGET %s, POLYGON_CALLS_PER_MINUTE %d", pt.RecordBudget, pt.PolygonCallsPerMinute)
	}
}

// A kept store is seeded with the sample portfolio once: after the built-in
// sample changes, the stored one differs, and the local stack says so.
func TestSampleDriftIsSaid(t *testing.T) {
	ctx := context.Background()
	s, err := devstack.Start(ctx, devstack.Options{NoQueue: true, NoMarketData: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if s.SampleDrift != "" {
		t.Fatalf("a fresh store drifts: %s", s.SampleDrift)
	}
	saved := devstack.SampleSymbols
	defer func() { devstack.SampleSymbols = saved }()
	devstack.SampleSymbols = append([]string{"IBM"}, saved[1:]...)
	if wrote, err := devstack.SeedSamplePortfolio(ctx, s.DB, s.Stage); err != nil || wrote {
		t.Fatalf("seeded again: %v %v", wrote, err)
	}
	d, err := devstack.SampleDrift(ctx, s.DB, s.Stage)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(d, "AAPL") || !strings.Contains(d, "IBM") {
		t.Errorf("drift %q does not name what is stored and what is built in", d)
	}
}

// The local queues keep the deployed settings: a record handed back waits
// out its queue's visibility timeout — unless the stack shortens it as `zsm
// run` does (RedeliverAtOnce), when it is received again at once, until the
// deployed receive count dead-letters it. FunctionsDynamoDB replaces the
// functions' DynamoDB endpoint alone.
func TestQueuesKeepTheDeployedSettingsUnlessShortened(t *testing.T) {
	for _, atOnce := range []bool{false, true} {
		s, err := devstack.Start(context.Background(), devstack.Options{NoMarketData: true, NoSeed: true, RedeliverAtOnce: atOnce,
			FunctionsDynamoDB: func(dynalite string) string { return dynalite + "/proxy" }})
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Lookup("AWS_ENDPOINT_URL_DYNAMODB"); got != s.Dynalite.Endpoint+"/proxy" {
			t.Errorf("functions' DynamoDB endpoint %q", got)
		}
		for _, q := range []struct {
			name     string
			receives int
		}{{devstack.QueueName, devstack.MaxReceiveCount}, {devstack.AnalysisQueueName, deploy.AnalysisMaxReceiveCount}} {
			url := s.SQS.QueueURL(q.name)
			if _, err := sqsClient(s).SendMessage(context.Background(), sendInput(url, q.name)); err != nil {
				t.Fatal(err)
			}
			for i := 1; ; i++ {
				ev, err := s.SQS.Receive(q.name, 1)
				if err != nil {
					t.Fatal(err)
				}
				if len(ev.Records) == 0 {
					if atOnce || i != 2 {
						t.Errorf("%s (at once %v): nothing to receive at receive %d", q.name, atOnce, i)
					}
					if c := s.SQS.Counts(q.name); c.InFlight != 1 {
						t.Errorf("%s: counts %+v, want the record waiting out its visibility timeout", q.name, c)
					}
					break
				}
				if _, err := s.SQS.Settle(q.name, ev, events.SQSEventResponse{}, errors.New("always fails")); err != nil {
					t.Fatal(err)
				}
				if i == q.receives {
					if dead := s.SQS.DeadLetters(q.name); !atOnce || len(dead) != 1 {
						t.Errorf("%s: dead letters %v after %d receives (at once %v)", q.name, dead, i, atOnce)
					}
					break
				}
			}
		}
		s.Stop()
	}
}

func sqsClient(s *devstack.Stack) *sqs.Client {
	return sqs.New(sqs.Options{Region: localsqs.Region, BaseEndpoint: aws.String(s.SQS.Endpoint()),
		Credentials: credentials.NewStaticCredentialsProvider("local", "local", "")})
}

func sendInput(url, queue string) *sqs.SendMessageInput {
	in := &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(`{"portfolio":"Doomed"}`)}
	if strings.HasSuffix(queue, ".fifo") {
		in.MessageGroupId, in.MessageDeduplicationId = aws.String("g"), aws.String("d")
	}
	return in
}
