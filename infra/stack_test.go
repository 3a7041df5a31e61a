package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/zsmseven/backend/pkg/analysisdb"
	"github.com/zsmseven/backend/pkg/bardb"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/metrics"
	"github.com/zsmseven/backend/pkg/portfoliodb"
	"github.com/zsmseven/backend/pkg/queue"
	"github.com/zsmseven/backend/pkg/secrets"
	"github.com/zsmseven/backend/pkg/tickerdb"
)

// The expected values below are written out literally from the issue and the
// contracts (architecture.md, common.md), not derived from the stack's own
// constants, so a change in the stack shows up as a failing test.

func TestGoldenTemplates(t *testing.T) {
	forEachStage(t, func(t *testing.T, stage string, s *synthesized) {
		got := goldenJSON(t, s)
		path := filepath.Join("testdata", deploy.StackName(stage)+".template.json")
		if *update {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run `go test ./infra -update` to create it)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("template of %s differs from %s; review the change, then run `go test ./infra -update`\n%s",
				stage, path, firstDiff(string(want), string(got)))
		}
	})
}

// firstDiff shows the first differing line with a little context.
func firstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return "line " + strconv.Itoa(i+1) + ":\n- " + wl + "\n+ " + gl
		}
	}
	return ""
}

func TestNoUnsuppressedNagFindings(t *testing.T) {
	forEachStage(t, func(t *testing.T, stage string, s *synthesized) {
		noPanic(t, func() {
			ann := assertions.Annotations_FromStack(s.stack)
			nag := assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*"))
			for _, f := range *ann.FindError(jsii.String("*"), nag) {
				t.Errorf("cdk-nag error: %s", compact(f))
			}
			for _, f := range *ann.FindWarning(jsii.String("*"), nag) {
				t.Errorf("cdk-nag warning: %s", compact(f))
			}
		})
	})
}

func TestStageFromContext(t *testing.T) {
	cases := []struct {
		name    string
		ctx     map[string]any
		want    Config
		wantErr string
	}{
		{name: "defaults", ctx: map[string]any{},
			want: Config{Stage: "dev", PolygonCallsPerMinute: 5, AnalysisPortfolio: "ZSM Seven", AssetsDir: "dist"}},
		{name: "prod from CLI strings", ctx: map[string]any{"stage": "prod", "polygonCallsPerMinute": "0", "analysisPortfolio": "Growth", "alarmEmail": "ops@example.com"},
			want: Config{Stage: "prod", PolygonCallsPerMinute: 0, AnalysisPortfolio: "Growth", AssetsDir: "dist", AlarmEmail: "ops@example.com"}},
		{name: "number from cdk.json", ctx: map[string]any{"polygonCallsPerMinute": float64(100)},
			want: Config{Stage: "dev", PolygonCallsPerMinute: 100, AnalysisPortfolio: "ZSM Seven", AssetsDir: "dist"}},
		{name: "unknown stage", ctx: map[string]any{"stage": "staging"}, wantErr: `context stage: stage "staging" is not valid`},
		{name: "local stage is not deployable", ctx: map[string]any{"stage": "local"}, wantErr: `context stage`},
		{name: "empty stage", ctx: map[string]any{"stage": ""}, wantErr: `context stage`},
		{name: "negative rate", ctx: map[string]any{"polygonCallsPerMinute": "-1"}, wantErr: "context polygonCallsPerMinute"},
		{name: "fractional rate", ctx: map[string]any{"polygonCallsPerMinute": float64(2.5)}, wantErr: "context polygonCallsPerMinute"},
		{name: "empty portfolio", ctx: map[string]any{"analysisPortfolio": " "}, wantErr: "context analysisPortfolio"},
		{name: "bad email", ctx: map[string]any{"alarmEmail": "ops.example.com"}, wantErr: "context alarmEmail"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			noPanic(t, func() {
				ctx := c.ctx
				app := awscdk.NewApp(&awscdk.AppProps{Context: &ctx})
				got, err := ConfigFromContext(app)
				if c.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), c.wantErr) || strings.Contains(err.Error(), "\n") {
						t.Fatalf("err = %v, want one line containing %q", err, c.wantErr)
					}
					return
				}
				if err != nil || got != c.want {
					t.Fatalf("got %+v, %v; want %+v", got, err, c.want)
				}
			})
		})
	}
}

func TestStackIsEnvironmentAgnostic(t *testing.T) {
	forEachStage(t, func(t *testing.T, stage string, s *synthesized) {
		if env := *s.stack.Environment(); env != "aws://unknown-account/unknown-region" {
			t.Errorf("stack environment %s, want environment-agnostic", env)
		}
		if strings.Contains(compact(s.doc), "\"aws:cdk:lookup") {
			t.Error("template depends on a context lookup")
		}
		if *s.stack.StackName() != "ZsmSevenBackend-"+stage {
			t.Errorf("stack name %s", *s.stack.StackName())
		}
	})
}

func TestOwnedTables(t *testing.T) {
	forEachStage(t, func(t *testing.T, stage string, s *synthesized) {
		if n := len(resources(s, "AWS::DynamoDB::Table")); n != 3 {
			t.Fatalf("%d tables, want 3 (the shared tables are imported, not created)", n)
		}
		for _, spec := range []deploy.Table{deploy.TickerData, deploy.DailyBars, deploy.PortfolioAnalyses} {
			id, r := one(t, s, "AWS::DynamoDB::Table", "TableName", spec.Name(stage))
			p := props(r)
			wantKeys := []any{map[string]any{"AttributeName": spec.PartitionKey.Name, "KeyType": "HASH"}}
			wantAttrs := []any{map[string]any{"AttributeName": spec.PartitionKey.Name, "AttributeType": string(spec.PartitionKey.Type)}}
			if spec.SortKey != nil {
				wantKeys = append(wantKeys, map[string]any{"AttributeName": spec.SortKey.Name, "KeyType": "RANGE"})
				wantAttrs = append(wantAttrs, map[string]any{"AttributeName": spec.SortKey.Name, "AttributeType": string(spec.SortKey.Type)})
			}
			if compact(p["KeySchema"]) != compact(wantKeys) {
				t.Errorf("%s key schema %s, want %s", id, compact(p["KeySchema"]), compact(wantKeys))
			}
			if compact(p["AttributeDefinitions"]) != compact(wantAttrs) {
				t.Errorf("%s attributes %s, want %s", id, compact(p["AttributeDefinitions"]), compact(wantAttrs))
			}
			if p["BillingMode"] != "PAY_PER_REQUEST" {
				t.Errorf("%s billing %v", id, p["BillingMode"])
			}
			if compact(p["PointInTimeRecoverySpecification"]) != `{"PointInTimeRecoveryEnabled":true}` {
				t.Errorf("%s PITR %v", id, p["PointInTimeRecoverySpecification"])
			}
			if sse, _ := p["SSESpecification"].(map[string]any); sse["SSEEnabled"] != true || sse["KMSMasterKeyId"] != nil {
				t.Errorf("%s encryption %v, want the AWS managed key", id, p["SSESpecification"])
			}
			if p["GlobalSecondaryIndexes"] != nil || p["LocalSecondaryIndexes"] != nil {
				t.Errorf("%s has secondary indexes; the IAM grants assume none", id)
			}
			wantPolicy, wantProtection := "Delete", false
			if stage == "prod" {
				wantPolicy, wantProtection = "Retain", true
			}
			if r["DeletionPolicy"] != wantPolicy || r["UpdateReplacePolicy"] != wantPolicy {
				t.Errorf("%s deletion policy %v/%v, want %s", id, r["DeletionPolicy"], r["UpdateReplacePolicy"], wantPolicy)
			}
			if got, _ := p["DeletionProtectionEnabled"].(bool); got != wantProtection {
				t.Errorf("%s deletion protection %v, want %v", id, p["DeletionProtectionEnabled"], wantProtection)
			}
			// daily-bars expires its bars (decision 0002); the others keep
			// every item.
			wantTTL := "null"
			if spec.Base == "daily-bars" {
				wantTTL = `{"AttributeName":"expiresAt","Enabled":true}`
			}
			if got := compact(p["TimeToLiveSpecification"]); got != wantTTL {
				t.Errorf("%s TTL %s, want %s", id, got, wantTTL)
			}
		}
		// The same through the CDK assertion API.
		noPanic(t, func() {
			s.template.HasResourceProperties(jsii.String("AWS::DynamoDB::Table"), map[string]any{
				"TableName":   "ticker-data-" + stage,
				"BillingMode": "PAY_PER_REQUEST",
				"KeySchema": []any{
					map[string]any{"AttributeName": "ticker", "KeyType": "HASH"},
					map[string]any{"AttributeName": "timestamp", "KeyType": "RANGE"},
				},
			})
		})
	})
}

// Function expectations from the issue and the configuration contract.
type wantFunction struct {
	name     string
	memory   float64
	timeout  float64
	env      []string // every variable the function gets besides STAGE and LOG_LEVEL
	secret   bool     // may read the API keys secret
	schedule bool     // invoked by a schedule (asynchronously)
}

var wantFunctions = []wantFunction{
	{name: "processTickers", memory: 256, timeout: 60, schedule: true,
		env: []string{"USER_PORTFOLIOS_TABLE", "PORTFOLIO_POSITIONS_TABLE", "TICKER_QUEUE_URL", "TICKER_MESSAGE_GROUPS", "DAILY_BARS_TABLE", "TICKER_DATA_TABLE"}},
	{name: "processTicker", memory: 256, timeout: 180, secret: true,
		env: []string{"TICKER_DATA_TABLE", "DAILY_BARS_TABLE", "POLYGON_BASE_URL", "POLYGON_CALLS_PER_MINUTE", "POLYGON_HISTORY_DAYS", "API_KEYS_SECRET_ARN",
			"TICKER_QUEUE_URL", "TICKER_DLQ_URL"}},
	{name: "analyzePortfolio", memory: 256, timeout: 300, secret: true, schedule: true,
		env: []string{"USER_PORTFOLIOS_TABLE", "PORTFOLIO_POSITIONS_TABLE", "TICKER_DATA_TABLE", "PORTFOLIO_ANALYSES_TABLE",
			"DEFAULT_PORTFOLIO", "XAI_API_URL", "XAI_MODEL", "XAI_MAX_COMPLETION_TOKENS", "API_KEYS_SECRET_ARN"}},
}

// fn finds a function by its deployed name.
func fn(t *testing.T, s *synthesized, name, stage string) (string, map[string]any) {
	t.Helper()
	id, r := one(t, s, "AWS::Lambda::Function", "FunctionName", "zsm-"+name+"-"+stage)
	return id, props(r)
}

func TestFunctions(t *testing.T) {
	forEachStage(t, func(t *testing.T, stage string, s *synthesized) {
		if n := len(resources(s, "AWS::Lambda::Function")); n != 3 {
			t.Fatalf("%d functions, want 3", n)
		}
		roles := map[string]string{}
		for _, w := range wantFunctions {
			id, p := fn(t, s, w.name, stage)
			if p["Runtime"] != "provided.al2023" || p["Handler"] != "bootstrap" || compact(p["Architectures"]) != `["arm64"]` {
				t.Errorf("%s runtime %v handler %v architectures %v", id, p["Runtime"], p["Handler"], p["Architectures"])
			}
			if p["MemorySize"] != w.memory || p["Timeout"] != w.timeout {
				t.Errorf("%s memory %v timeout %v, want %v and %v", id, p["MemorySize"], p["Timeout"], w.memory, w.timeout)
			}
			// Code is an asset of that function's directory.
			meta, _ := resources(s, "AWS::Lambda::Function")[id]["Metadata"].(map[string]any)
			if meta["aws:asset:property"] != "Code" || !strings.HasPrefix(meta["aws:asset:path"].(string), "asset.") {
				t.Errorf("%s code is not a file asset: %v", id, meta)
			}
			// Logging: JSON to its own log group with retention.
			lc, _ := p["LoggingConfig"].(map[string]any)
			if lc["LogFormat"] != "JSON" || lc["ApplicationLogLevel"] != "INFO" || lc["SystemLogLevel"] != "INFO" {
				t.Errorf("%s logging %v", id, compact(lc))
			}
			lgID, lg := one(t, s, "AWS::Logs::LogGroup", "LogGroupName", "/aws/lambda/zsm-"+w.name+"-"+stage)
			if ref(lc["LogGroup"]) != lgID {
				t.Errorf("%s logs to %v, want its own log group %s", id, lc["LogGroup"], lgID)
			}
			wantDays, wantPolicy := 30.0, "Delete"
			if stage == "prod" {
				wantDays, wantPolicy = 90, "Retain"
			}
			if props(lg)["RetentionInDays"] != wantDays || lg["DeletionPolicy"] != wantPolicy {
				t.Errorf("log group %s retention %v deletion %v, want %v days, %s", lgID, props(lg)["RetentionInDays"], lg["DeletionPolicy"], wantDays, wantPolicy)
			}
			// Its own role, without managed policies.
			roleID := ref(p["Role"])
			if prev, dup := roles[roleID]; dup {
				t.Errorf("%s shares role %s with %s", id, roleID, prev)
			}
			roles[roleID] = w.name
			role := resources(s, "AWS::IAM::Role")[roleID]
			if role == nil {
				t.Fatalf("%s role %v is not in the template", id, p["Role"])
			}
			if props(role)["ManagedPolicyArns"] != nil {
				t.Errorf("role of %s has managed policies %v", id, props(role)["ManagedPolicyArns"])
			}
			if !strings.Contains(compact(props(role)["AssumeRolePolicyDocument"]), `"Service":"lambda.amazonaws.com"`) {
				t.Errorf("role of %s is not assumable by Lambda only: %s", id, compact(props(role)["AssumeRolePolicyDocument"]))
			}
			// Environment: exactly the contract's variables.
			env := p["Environment"].(map[string]any)["Variables"].(map[string]any)
			wantEnv := append([]string{"STAGE", "LOG_LEVEL"}, w.env...)
			slices.Sort(wantEnv)
			if got := sortedKeys(env); !slices.Equal(got, wantEnv) {
				t.Errorf("%s environment %v, want %v", id, got, wantEnv)
			}
			if env["STAGE"] != stage || env["LOG_LEVEL"] != "info" {
				t.Errorf("%s STAGE=%v LOG_LEVEL=%v", id, env["STAGE"], env["LOG_LEVEL"])
			}
			checkEnvValues(t, s, stage, id, env)
		}
	})
}

// checkEnvValues checks each variable's value against what it must point to.
func checkEnvValues(t *testing.T, s *synthesized, stage, fnID string, env map[string]any) {
	t.Helper()
	tableID := func(name string) string {
		id, _ := one(t, s, "AWS::DynamoDB::Table", "TableName", name)
		return id
	}
	queueID, _ := one(t, s, "AWS::SQS::Queue", "QueueName", "ticker-processing-queue-"+stage+".fifo")
	dlqID, _ := one(t, s, "AWS::SQS::Queue", "QueueName", "ticker-processing-dlq-"+stage+".fifo")
	secretID, _ := one(t, s, "AWS::SecretsManager::Secret", "Name", "zsm-seven/"+stage+"/api-keys")
	for k, v := range env {
		ok := true
		switch k {
		case "USER_PORTFOLIOS_TABLE":
			ok = v == "user-portfolios-"+stage
		case "PORTFOLIO_POSITIONS_TABLE":
			ok = v == "portfolio-positions-"+stage
		case "TICKER_DATA_TABLE":
			ok = ref(v) == tableID("ticker-data-"+stage)
		case "DAILY_BARS_TABLE":
			ok = ref(v) == tableID("daily-bars-"+stage)
		case "PORTFOLIO_ANALYSES_TABLE":
			ok = ref(v) == tableID("portfolio-analyses-"+stage)
		case "TICKER_QUEUE_URL":
			ok = ref(v) == queueID
		case "TICKER_DLQ_URL":
			ok = ref(v) == dlqID
		case "TICKER_MESSAGE_GROUPS":
			ok = v == "1"
		case "API_KEYS_SECRET_ARN":
			ok = ref(v) == secretID
		case "POLYGON_BASE_URL":
			ok = v == "https://api.polygon.io"
		case "POLYGON_CALLS_PER_MINUTE":
			ok = v == "5"
		case "POLYGON_HISTORY_DAYS":
			ok = v == "400"
		case "XAI_API_URL":
			ok = v == "https://api.x.ai/v1/chat/completions"
		case "XAI_MODEL":
			ok = v == "grok-4.3"
		case "XAI_MAX_COMPLETION_TOKENS":
			ok = v == "8000"
		case "DEFAULT_PORTFOLIO":
			ok = v == "ZSM Seven"
		}
		if !ok {
			t.Errorf("%s %s=%s", fnID, k, compact(v))
		}
	}
}

func TestNoKeyMaterial(t *testing.T) {
	keyish := regexp.MustCompile(`(?i)key|secret|password|credential|(^|_)token($|_)`)
	material := regexp.MustCompile(`xai-[A-Za-z0-9]{8,}|sk-[A-Za-z0-9]{8,}|"SecretString"`)
	forEachStage(t, func(t *testing.T, stage string, s *synthesized) {
		secretID, _ := one(t, s, "AWS::SecretsManager::Secret", "Name", "zsm-seven/"+stage+"/api-keys")
		for id, r := range resources(s, "AWS::Lambda::Function") {
			env := props(r)["Environment"].(map[string]any)["Variables"].(map[string]any)
			for k, v := range env {
				if k == deploy.SecretKeyPolygon || k == deploy.SecretKeyXAI {
					t.Errorf("%s sets %s in its environment", id, k)
				}
				// The only key-ish variable is the secret's ARN, a reference.
				if keyish.MatchString(k) && !(k == "API_KEYS_SECRET_ARN" && ref(v) == secretID) {
					t.Errorf("%s environment %s=%s looks like key material", id, k, compact(v))
				}
			}
		}
		if m := material.FindString(compact(s.doc)); m != "" {
			t.Errorf("template contains key material or a secret value: %q", m)
		}
	})
}

func TestSecret(t *testing.T) {
	forEachStage(t, func(t *testing.T, stage string, s *synthesized) {
		if n := len(resources(s, "AWS::SecretsManager::Secret")); n != 1 {
			t.Fatalf("%d secrets, want 1", n)
		}
		id, r := one(t, s, "AWS::SecretsManager::Secret", "Name", "zsm-seven/"+stage+"/api-keys")
		gen, _ := props(r)["GenerateSecretString"].(map[string]any)
		var tmpl map[string]string
		if err := json.Unmarshal([]byte(gen["SecretStringTemplate"].(string)), &tmpl); err != nil {
			t.Fatalf("%s template: %v", id, err)
		}
		if len(tmpl) != 2 || tmpl["POLYGON_API_KEY"] != "" || tmpl["XAI_API_KEY"] != "" {
			t.Errorf("%s template %v, want both key names with empty values", id, tmpl)
		}
		if gk := gen["GenerateStringKey"]; gk == "POLYGON_API_KEY" || gk == "XAI_API_KEY" {
			t.Errorf("%s generates a random value into %v", id, gk)
		}
		want := "Delete"
		if stage == "prod" {
			want = "Retain"
		}
		if r["DeletionPolicy"] != want {
			t.Errorf("%s deletion policy %v, want %s", id, r["DeletionPolicy"], want)
		}
		// Read only by the two functions that need a key.
		readers := map[string]bool{}
		for _, st := range statements(t, s) {
			for _, res := range st.resources {
				if strings.Contains(res, `"`+id+`"`) {
					if !slices.Equal(st.actions, []string{"secretsmanager:GetSecretValue"}) {
						t.Errorf("policy %s grants %v on the secret, want only secretsmanager:GetSecretValue", st.policy, st.actions)
					}
					for _, role := range st.roles {
						readers[role] = true
					}
				}
			}
		}
		want2 := map[string]bool{}
		for _, w := range wantFunctions {
			_, p := fn(t, s, w.name, stage)
			if w.secret {
				want2[ref(p["Role"])] = true
			}
		}
		if compact(readers) != compact(want2) {
			t.Errorf("secret readers %v, want %v (processTicker and analyzePortfolio roles)", sortedKeys(readers), sortedKeys(want2))
		}
	})
}

func TestTickerQueue(t *testing.T) {
	forEachStage(t, func(t *testing.T, stage string, s *synthesized) {
		qID, q := one(t, s, "AWS::SQS::Queue", "QueueName", "ticker-processing-queue-"+stage+".fifo")
		dID, d := one(t, s, "AWS::SQS::Queue", "QueueName", "ticker-processing-dlq-"+stage+".fifo")
		for id, p := range map[string]map[string]any{qID: props(q), dID: props(d)} {
			if p["FifoQueue"] != true || p["ContentBasedDeduplication"] != false {
				t.Errorf("%s FIFO %v content-based dedup %v, want FIFO with explicit dedup ids", id, p["FifoQueue"], p["ContentBasedDeduplication"])
			}
			if p["MessageRetentionPeriod"] != 14.0*24*3600 {
				t.Errorf("%s retention %v, want 14 days", id, p["MessageRetentionPeriod"])
			}
		}
		rp, _ := props(q)["RedrivePolicy"].(map[string]any)
		if ref(rp["deadLetterTargetArn"]) != dID {
			t.Errorf("redrive target %v, want %s", rp["deadLetterTargetArn"], dID)
		}
		if n, _ := rp["maxReceiveCount"].(float64); n < 5 {
			t.Errorf("maxReceiveCount %v, want at least 5", rp["maxReceiveCount"])
		}

		// The consumer: event source settings, and the visibility rule computed
		// from the template.
		var esm map[string]any
		for _, r := range resources(s, "AWS::Lambda::EventSourceMapping") {
			if ref(props(r)["EventSourceArn"]) == qID {
				esm = props(r)
			}
		}
		if esm == nil {
			t.Fatal("no event source mapping reads the ticker queue")
		}
		consumerID, consumer := fn(t, s, "processTicker", stage)
		if ref(esm["FunctionName"]) != consumerID {
			t.Errorf("ticker queue is consumed by %v, want %s", esm["FunctionName"], consumerID)
		}
		if esm["BatchSize"] != 10.0 || compact(esm["FunctionResponseTypes"]) != `["ReportBatchItemFailures"]` ||
			compact(esm["ScalingConfig"]) != `{"MaximumConcurrency":2}` {
			t.Errorf("event source %s", compact(esm))
		}
		if n := len(resources(s, "AWS::Lambda::EventSourceMapping")); n != 1 {
			t.Errorf("%d event source mappings, want 1", n)
		}
		timeout := consumer["Timeout"].(float64)
		if vis := props(q)["VisibilityTimeout"].(float64); vis < 6*timeout {
			t.Errorf("visibility timeout %v s < 6 x consumer timeout %v s", vis, timeout)
		}
		// A full batch paced at the configured rate fits in the timeout.
		env := consumer["Environment"].(map[string]any)["Variables"].(map[string]any)
		cpm, err := strconv.Atoi(env["POLYGON_CALLS_PER_MINUTE"].(string))
		if err != nil {
			t.Fatal(err)
		}
		if cpm > 0 {
			if need := esm["BatchSize"].(float64) * 60 / float64(cpm); need >= timeout {
				t.Errorf("a batch of %v at %d calls/min needs %v s, timeout is %v s", esm["BatchSize"], cpm, need, timeout)
			}
		}
	})
}

func TestEveryQueueIsEncryptedAndEnforcesSSL(t *testing.T) {
	forEachStage(t, func(t *testing.T, stage string, s *synthesized) {
		queues := resources(s, "AWS::SQS::Queue")
		if len(queues) != 4 {
			t.Errorf("%d queues, want 4 (ticker queue, its DLQ, schedule DLQ, async failures)", len(queues))
		}
		ssl := map[string]bool{}
		for _, r := range resources(s, "AWS::SQS::QueuePolicy") {
			doc := compact(props(r)["PolicyDocument"])
			if !containsAll(doc, `"Effect":"Deny"`, `"aws:SecureTransport":"false"`) {
				continue
			}
			for _, q := range list(props(r)["Queues"]) {
				ssl[ref(q)] = true
			}
		}
		for id, r := range queues {
			p := props(r)
			if p["SqsManagedSseEnabled"] != true || p["KmsMasterKeyId"] != nil {
				t.Errorf("queue %s is not SQS-managed encrypted: %s", id, compact(p))
			}
			if !ssl[id] {
				t.Errorf("queue %s does not deny non-TLS access", id)
			}
			if p["MessageRetentionPeriod"] != 14.0*24*3600 {
				t.Errorf("queue %s retention %v, want 14 days", id, p["MessageRetentionPeriod"])
			}
		}
	})
}

func TestSchedules(t *testing.T) {
	forEachStage(t, func(t *testing.T, stage string, s *synthesized) {
		if n := len(resources(s, "AWS::Scheduler::Schedule")); n != 3 {
			t.Fatalf("%d schedules, want 3", n)
		}
		dlqID, _ := one(t, s, "AWS::SQS::Queue", "QueueName", "zsm-schedule-dlq-"+stage)
		for _, c := range []struct {
			fn, expr, input string
		}{
			// An explicit {}: the Go runtime cannot decode an empty payload
			// (EOF before the handler runs), and without Input the Scheduler
			// sends "a default notification" whose shape is not documented.
			{"processTickers", "cron(30 21 ? * MON-FRI *)", "{}"},
			// The catch-up run later the same night, before the analysis.
			{"processTickers", "cron(30 23 ? * MON-FRI *)", `{"catchUp":true}`},
			{"analyzePortfolio", "cron(0 1 ? * TUE-SAT *)", `{"portfolio_name":"ZSM Seven"}`},
		} {
			id, r := one(t, s, "AWS::Scheduler::Schedule", "ScheduleExpression", c.expr)
			p := props(r)
			fnID, _ := fn(t, s, c.fn, stage)
			target := p["Target"].(map[string]any)
			if p["ScheduleExpressionTimezone"] != "America/New_York" || p["State"] != "ENABLED" {
				t.Errorf("%s time zone %v state %v", id, p["ScheduleExpressionTimezone"], p["State"])
			}
			if ref(target["Arn"]) != fnID {
				t.Errorf("%s invokes %v, want %s", id, target["Arn"], fnID)
			}
			if compact(target["RetryPolicy"]) != `{"MaximumEventAgeInSeconds":3600,"MaximumRetryAttempts":2}` {
				t.Errorf("%s retry policy %s", id, compact(target["RetryPolicy"]))
			}
			if dl, _ := target["DeadLetterConfig"].(map[string]any); ref(dl["Arn"]) != dlqID {
				t.Errorf("%s dead-letter %v, want %s", id, target["DeadLetterConfig"], dlqID)
			}
			if in, _ := target["Input"].(string); in != c.input {
				t.Errorf("%s input %q, want %q", id, in, c.input)
			}
		}
		// Scheduler's role may only invoke the two scheduled functions and
		// dead-letter to its queue.
		noPanic(t, func() {
			s.template.HasResourceProperties(jsii.String("AWS::IAM::Role"), map[string]any{
				"AssumeRolePolicyDocument": assertions.Match_ObjectLike(&map[string]any{
					"Statement": []any{assertions.Match_ObjectLike(&map[string]any{
						"Principal": map[string]any{"Service": "scheduler.amazonaws.com"},
						"Condition": map[string]any{"StringEquals": map[string]any{"aws:SourceAccount": map[string]any{"Ref": "AWS::AccountId"}}},
					})},
				}),
			})
		})
	})
}

func TestScheduledFunctionsAsyncFailures(t *testing.T) {
	forEachStage(t, func(t *testing.T, stage string, s *synthesized) {
		qID, _ := one(t, s, "AWS::SQS::Queue", "QueueName", "zsm-async-failures-"+stage)
		configs := map[string]map[string]any{}
		for _, r := range resources(s, "AWS::Lambda::EventInvokeConfig") {
			configs[ref(props(r)["FunctionName"])] = props(r)
		}
		for _, w := range wantFunctions {
			id, _ := fn(t, s, w.name, stage)
			c, ok := configs[id]
			if ok != w.schedule {
				t.Errorf("%s has an async invoke config: %v, want %v", w.name, ok, w.schedule)
				continue
			}
			if !ok {
				continue
			}
			if c["MaximumRetryAttempts"] != 2.0 || c["MaximumEventAgeInSeconds"] != 3600.0 {
				t.Errorf("%s async retry %v, age %v", w.name, c["MaximumRetryAttempts"], c["MaximumEventAgeInSeconds"])
			}
			dc := c["DestinationConfig"].(map[string]any)["OnFailure"].(map[string]any)
			if ref(dc["Destination"]) != qID {
				t.Errorf("%s on-failure destination %v, want %s", w.name, dc["Destination"], qID)
			}
		}
	})
}

// readActions may be granted on the shared tables of portfolio-api.
var readActions = []string{"dynamodb:BatchGetItem", "dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan"}

// starResourceActions may use Resource "*" because their service has no
// narrower resource (X-Ray tracing, were it enabled).
var starResourceActions = []string{"xray:PutTraceSegments", "xray:PutTelemetryRecords"}

func TestIAMLeastPrivilege(t *testing.T) {
	forEachStage(t, func(t *testing.T, stage string, s *synthesized) {
		sts := statements(t, s)
		if len(sts) == 0 {
			t.Fatal("no policy statements found")
		}
		shared := []string{":table/user-portfolios-" + stage, ":table/portfolio-positions-" + stage}
		for _, st := range sts {
			if st.effect != "Allow" {
				t.Errorf("policy %s has a %s statement", st.policy, st.effect)
			}
			for _, a := range st.actions {
				if strings.Contains(a, "*") {
					t.Errorf("policy %s allows wildcard action %s", st.policy, a)
				}
			}
			for _, res := range st.resources {
				if res == "*" {
					for _, a := range st.actions {
						if !slices.Contains(starResourceActions, a) {
							t.Errorf("policy %s allows %s on Resource *", st.policy, a)
						}
					}
				}
				if strings.Contains(res, "/index/") {
					t.Errorf("policy %s grants on an index (%s); no index is used", st.policy, res)
				}
				for _, sh := range shared {
					if !strings.Contains(res, sh) {
						continue
					}
					if !strings.HasSuffix(res, sh+`"]]}`) {
						t.Errorf("policy %s: shared-table resource is not the exact table ARN: %s", st.policy, res)
					}
					for _, a := range st.actions {
						if !slices.Contains(readActions, a) {
							t.Errorf("policy %s allows %s on shared table %s", st.policy, a, sh)
						}
					}
				}
			}
		}

		// Each function's exact permissions (besides writing its own logs).
		tickerData, _ := one(t, s, "AWS::DynamoDB::Table", "TableName", "ticker-data-"+stage)
		dailyBars, _ := one(t, s, "AWS::DynamoDB::Table", "TableName", "daily-bars-"+stage)
		analyses, _ := one(t, s, "AWS::DynamoDB::Table", "TableName", "portfolio-analyses-"+stage)
		queue, _ := one(t, s, "AWS::SQS::Queue", "QueueName", "ticker-processing-queue-"+stage+".fifo")
		dlq, _ := one(t, s, "AWS::SQS::Queue", "QueueName", "ticker-processing-dlq-"+stage+".fifo")
		async, _ := one(t, s, "AWS::SQS::Queue", "QueueName", "zsm-async-failures-"+stage)
		secret, _ := one(t, s, "AWS::SecretsManager::Secret", "Name", "zsm-seven/"+stage+"/api-keys")
		// pkg/portfoliodb reads the shared tables with Scan only.
		sharedRead := "dynamodb:Scan"
		asyncSend := "sqs:GetQueueAttributes sqs:GetQueueUrl sqs:SendMessage"
		want := map[string]map[string]string{
			"processTickers": {
				"user-portfolios-" + stage: sharedRead, "portfolio-positions-" + stage: sharedRead,
				queue: "sqs:SendMessage", async: asyncSend,
				// The catch-up run: the day's state, the rows of the day.
				dailyBars: "dynamodb:GetItem", tickerData: "dynamodb:BatchGetItem",
			},
			"processTicker": {
				tickerData: "dynamodb:GetItem dynamodb:PutItem", secret: "secretsmanager:GetSecretValue",
				dailyBars: "dynamodb:BatchWriteItem dynamodb:GetItem dynamodb:PutItem dynamodb:Query",
				// Consumed through the event source; re-queue and dead-letter
				// sends by processTicker itself (queue.Requeuer).
				queue: "sqs:ChangeMessageVisibility sqs:DeleteMessage sqs:GetQueueAttributes sqs:GetQueueUrl sqs:ReceiveMessage sqs:SendMessage",
				dlq:   "sqs:SendMessage",
			},
			"analyzePortfolio": {
				"user-portfolios-" + stage: sharedRead, "portfolio-positions-" + stage: sharedRead,
				tickerData: "dynamodb:Query", analyses: "dynamodb:PutItem dynamodb:Query",
				secret: "secretsmanager:GetSecretValue", async: asyncSend,
			},
		}
		for _, w := range wantFunctions {
			_, p := fn(t, s, w.name, stage)
			role := ref(p["Role"])
			lg, _ := one(t, s, "AWS::Logs::LogGroup", "LogGroupName", "/aws/lambda/zsm-"+w.name+"-"+stage)
			got := map[string][]string{}
			for _, st := range sts {
				if !slices.Contains(st.roles, role) {
					continue
				}
				for _, res := range st.resources {
					key := res
					if m := regexp.MustCompile(`:table/([a-z-]+)"\]\]\}$`).FindStringSubmatch(res); m != nil {
						key = m[1]
					} else if id := refOfJSON(res); id != "" {
						key = id
					}
					got[key] = append(got[key], st.actions...)
				}
			}
			if l := strings.Join(sortedUnique(got[lg]), " "); l != "logs:CreateLogStream logs:PutLogEvents" {
				t.Errorf("%s log permissions %q", w.name, l)
			}
			delete(got, lg)
			gotStr := map[string]string{}
			for k, v := range got {
				gotStr[k] = strings.Join(sortedUnique(v), " ")
			}
			if compact(gotStr) != compact(want[w.name]) {
				t.Errorf("%s permissions\n got %s\nwant %s", w.name, compact(gotStr), compact(want[w.name]))
			}
		}
	})
}

// The actions granted on each data resource follow the narrow client
// interfaces of the adapters that use it: a method added to an adapter without
// its permission (or a permission no adapter needs) fails here, not in a
// deployed stage, because dynalite and localsqs enforce no IAM. Per resource,
// the union over all roles must equal the interface's methods as IAM actions.
func TestGrantsFollowAdapterInterfaces(t *testing.T) {
	methods := func(prefix string, iface reflect.Type) string {
		var out []string
		for i := range iface.NumMethod() {
			name := iface.Method(i).Name
			switch name {
			case "SendMessageBatch", "ChangeMessageVisibilityBatch":
				name = strings.TrimSuffix(name, "Batch") // IAM has no separate batch action
			}
			out = append(out, prefix+name)
		}
		return strings.Join(sortedUnique(out), " ")
	}
	shared := methods("dynamodb:", reflect.TypeFor[portfoliodb.DynamoDBAPI]())
	if got := strings.Join(sortedUnique(sharedReadActions), " "); got != shared {
		t.Errorf("shared-table grant %q, but portfoliodb.DynamoDBAPI uses %q", got, shared)
	}
	forEachStage(t, func(t *testing.T, stage string, s *synthesized) {
		tickerData, _ := one(t, s, "AWS::DynamoDB::Table", "TableName", "ticker-data-"+stage)
		dailyBars, _ := one(t, s, "AWS::DynamoDB::Table", "TableName", "daily-bars-"+stage)
		analysesTable, _ := one(t, s, "AWS::DynamoDB::Table", "TableName", "portfolio-analyses-"+stage)
		secret, _ := one(t, s, "AWS::SecretsManager::Secret", "Name", "zsm-seven/"+stage+"/api-keys")
		tickerQueue, _ := one(t, s, "AWS::SQS::Queue", "QueueName", "ticker-processing-queue-"+stage+".fifo")
		tickerDLQ, _ := one(t, s, "AWS::SQS::Queue", "QueueName", "ticker-processing-dlq-"+stage+".fifo")
		granted := map[string][]string{}
		for _, st := range statements(t, s) {
			for _, res := range st.resources {
				if id := refOfJSON(res); id != "" {
					granted[id] = append(granted[id], st.actions...)
				}
			}
		}
		sqsSend := func(actions []string) []string {
			// The event source's consume actions are Lambda's, not an
			// adapter's (it also grants ChangeMessageVisibility, which the
			// visibility adapter has its own statement for).
			var out []string
			for _, a := range actions {
				if a == "sqs:SendMessage" || a == "sqs:ChangeMessageVisibility" {
					out = append(out, a)
				}
			}
			return out
		}
		union := func(a, b string) string {
			return strings.Join(sortedUnique(append(strings.Fields(a), strings.Fields(b)...)), " ")
		}
		for _, c := range []struct {
			what, id string
			got      []string
			want     string
		}{
			{"ticker-data", tickerData, granted[tickerData], methods("dynamodb:", reflect.TypeFor[tickerdb.DynamoDBAPI]())},
			{"daily-bars", dailyBars, granted[dailyBars], methods("dynamodb:", reflect.TypeFor[bardb.DynamoDBAPI]())},
			{"portfolio-analyses", analysesTable, granted[analysesTable], methods("dynamodb:", reflect.TypeFor[analysisdb.DynamoDBAPI]())},
			{"api-keys secret", secret, granted[secret], methods("secretsmanager:", reflect.TypeFor[secrets.SecretsManagerAPI]())},
			// processTickers' publisher and processTicker's requeuer share
			// queue.SQSAPI, and processTicker's visibility adapter uses
			// queue.VisibilityAPI on the ticker queue; only the requeuer
			// sends to the dead-letter queue.
			{"ticker queue (send, visibility)", tickerQueue, sqsSend(granted[tickerQueue]),
				union(methods("sqs:", reflect.TypeFor[queue.SQSAPI]()), methods("sqs:", reflect.TypeFor[queue.VisibilityAPI]()))},
			{"ticker dead-letter queue (send)", tickerDLQ, sqsSend(granted[tickerDLQ]), methods("sqs:", reflect.TypeFor[queue.SQSAPI]())},
		} {
			if got := strings.Join(sortedUnique(c.got), " "); got != c.want {
				t.Errorf("%s: granted %q, adapter interface uses %q", c.what, got, c.want)
			}
		}
	})
}

// refOfJSON is ref for a compact JSON resource.
func refOfJSON(s string) string {
	var v any
	if json.Unmarshal([]byte(s), &v) != nil {
		return ""
	}
	return ref(v)
}

func sortedUnique(in []string) []string {
	out := slices.Clone(in)
	slices.Sort(out)
	return slices.Compact(out)
}

func TestMonitoring(t *testing.T) {
	forEachStage(t, func(t *testing.T, stage string, s *synthesized) {
		topicID, _ := one(t, s, "AWS::SNS::Topic", "TopicName", "zsm-alarms-"+stage)
		enforced := false
		for _, r := range resources(s, "AWS::SNS::TopicPolicy") {
			doc := compact(props(r)["PolicyDocument"])
			if containsAll(doc, `"Effect":"Deny"`, `"aws:SecureTransport":"false"`) && strings.Contains(compact(props(r)["Topics"]), topicID) {
				enforced = true
			}
		}
		if !enforced {
			t.Error("alarm topic does not enforce SSL")
		}
		if n := len(resources(s, "AWS::SNS::Subscription")); n != 0 {
			t.Errorf("%d subscriptions without alarmEmail, want 0", n)
		}

		alarms := resources(s, "AWS::CloudWatch::Alarm")
		for id, r := range alarms {
			acts := list(props(r)["AlarmActions"])
			if len(acts) != 1 || ref(acts[0]) != topicID {
				t.Errorf("alarm %s actions %v, want the topic", id, acts)
			}
		}
		find := func(ns, metric string, dims map[string]string) map[string]any {
			t.Helper()
			var found []map[string]any
			for _, r := range alarms {
				p := props(r)
				if p["Namespace"] != ns || p["MetricName"] != metric {
					continue
				}
				got := map[string]string{}
				for _, d := range list(p["Dimensions"]) {
					d := d.(map[string]any)
					v, _ := d["Value"].(string)
					if v == "" {
						v = ref(d["Value"])
					}
					got[d["Name"].(string)] = v
				}
				if compact(got) == compact(dims) {
					found = append(found, p)
				}
			}
			if len(found) != 1 {
				t.Fatalf("alarms on %s/%s %v: %d, want 1", ns, metric, dims, len(found))
			}
			return found[0]
		}
		above0 := func(p map[string]any, what string) {
			t.Helper()
			if p["ComparisonOperator"] != "GreaterThanThreshold" || p["Threshold"] != 0.0 || p["TreatMissingData"] != "notBreaching" {
				t.Errorf("%s alarm: %v %v missing=%v, want > 0", what, p["ComparisonOperator"], p["Threshold"], p["TreatMissingData"])
			}
		}
		for _, q := range []string{"ticker-processing-dlq-" + stage + ".fifo", "zsm-schedule-dlq-" + stage, "zsm-async-failures-" + stage} {
			qID, _ := one(t, s, "AWS::SQS::Queue", "QueueName", q)
			// The dimension value is the queue name attribute.
			var p map[string]any
			for _, r := range alarms {
				pp := props(r)
				if pp["MetricName"] == "ApproximateNumberOfMessagesVisible" && strings.Contains(compact(pp["Dimensions"]), `"`+qID+`"`) {
					p = pp
				}
			}
			if p == nil {
				t.Errorf("no depth alarm on %s", q)
				continue
			}
			above0(p, q)
		}
		for _, w := range wantFunctions {
			fnID, _ := fn(t, s, w.name, stage)
			above0(find("AWS/Lambda", "Errors", map[string]string{"FunctionName": fnID}), w.name+" errors")
		}
		stageDim := map[string]string{metrics.DimensionStage: stage}
		above0(find(metrics.Namespace, metrics.PolygonThrottled, stageDim), "Polygon 429")
		above0(find(metrics.Namespace, metrics.AnalysisFallback, stageDim), "analysis fallback")
		for _, m := range []string{metrics.TickersProcessed, metrics.AnalysesStored} {
			p := find(metrics.Namespace, m, stageDim)
			window := p["Period"].(float64) * p["EvaluationPeriods"].(float64)
			if p["ComparisonOperator"] != "LessThanThreshold" || p["Threshold"] != 1.0 || p["TreatMissingData"] != "breaching" ||
				p["Statistic"] != "Sum" || p["DatapointsToAlarm"] != p["EvaluationPeriods"] {
				t.Errorf("stale %s alarm %s", m, compact(p))
			}
			// Longer than the weekend gap between runs (72 h), within CloudWatch's 7-day limit.
			if window <= 72*3600 || window > 7*24*3600 {
				t.Errorf("stale %s window %v s", m, window)
			}
		}
		if n := len(alarms); n != 10 {
			t.Errorf("%d alarms, want 10 (3 DLQ, 3 errors, 429, fallback, 2 stale)", n)
		}

		_, d := one(t, s, "AWS::CloudWatch::Dashboard", "DashboardName", "zsm-seven-"+stage)
		body := compact(props(d)["DashboardBody"])
		for _, m := range []string{"ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage", "Invocations", "Errors", "Duration",
			metrics.PolygonCalls, metrics.PolygonThrottled, metrics.LLMPromptTokens, metrics.LLMCompletionTokens, metrics.LLMCostUSD,
			metrics.TickersProcessed, metrics.AnalysesStored} {
			if !strings.Contains(body, `\"`+m+`\"`) {
				t.Errorf("dashboard does not show %s", m)
			}
		}
	})
}

// TestContextOverrides synthesizes one more stack with the optional context
// set: the analysis portfolio, the Polygon rate and the alarm email.
func TestContextOverrides(t *testing.T) {
	s := synthWith(t, "dev", map[string]any{
		ctxAnalysisPortfolio: "Growth Fund", ctxPolygonCallsPerMinute: "100", ctxAlarmEmail: "ops@example.com",
	})
	_, r := one(t, s, "AWS::Scheduler::Schedule", "ScheduleExpression", "cron(0 1 ? * TUE-SAT *)")
	if in := props(r)["Target"].(map[string]any)["Input"]; in != `{"portfolio_name":"Growth Fund"}` {
		t.Errorf("analysis input %v", in)
	}
	_, p := fn(t, s, "processTicker", "dev")
	if v := p["Environment"].(map[string]any)["Variables"].(map[string]any)["POLYGON_CALLS_PER_MINUTE"]; v != "100" {
		t.Errorf("POLYGON_CALLS_PER_MINUTE=%v", v)
	}
	_, p = fn(t, s, "analyzePortfolio", "dev")
	if v := p["Environment"].(map[string]any)["Variables"].(map[string]any)["DEFAULT_PORTFOLIO"]; v != "Growth Fund" {
		t.Errorf("DEFAULT_PORTFOLIO=%v", v)
	}
	noPanic(t, func() {
		s.template.ResourceCountIs(jsii.String("AWS::SNS::Subscription"), jsii.Number(1))
		s.template.HasResourceProperties(jsii.String("AWS::SNS::Subscription"), map[string]any{
			"Protocol": "email", "Endpoint": "ops@example.com",
		})
	})
}
