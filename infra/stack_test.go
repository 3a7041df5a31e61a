package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/jsii-runtime-go"

	"github.com/zsmseven/backend/pkg/analysisdb"
	"github.com/zsmseven/backend/pkg/bardb"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/portfoliodb"
	"github.com/zsmseven/backend/pkg/reservationdb"
	"github.com/zsmseven/backend/pkg/secrets"
	"github.com/zsmseven/backend/pkg/sqsqueue"
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
			want: Config{Stage: "dev", PolygonCallsPerMinute: 5, AnalysisPortfolio: "*", AnalysisConcurrency: 10, ModelProvider: "xai", AnalysisManager: "model", AssetsDir: "dist"}},
		{name: "prod from CLI strings", ctx: map[string]any{"stage": "prod", "polygonCallsPerMinute": "0", "analysisPortfolio": "Growth", "alarmEmail": "ops@example.com",
			"analysisConcurrency": "25"},
			want: Config{Stage: "prod", PolygonCallsPerMinute: 0, AnalysisPortfolio: "Growth", AnalysisConcurrency: 25, ModelProvider: "xai", AnalysisManager: "model", AssetsDir: "dist", AlarmEmail: "ops@example.com"}},
		{name: "number from cdk.json", ctx: map[string]any{"polygonCallsPerMinute": float64(100)},
			want: Config{Stage: "dev", PolygonCallsPerMinute: 100, AnalysisPortfolio: "*", AnalysisConcurrency: 10, ModelProvider: "xai", AnalysisManager: "model", AssetsDir: "dist"}},
		{name: "every portfolio", ctx: map[string]any{"analysisPortfolio": "*"},
			want: Config{Stage: "dev", PolygonCallsPerMinute: 5, AnalysisPortfolio: "*", AnalysisConcurrency: 10, ModelProvider: "xai", AnalysisManager: "model", AssetsDir: "dist"}},
		{name: "concurrency below Lambda's minimum", ctx: map[string]any{"analysisConcurrency": "1"}, wantErr: "context analysisConcurrency"},
		{name: "concurrency not a number", ctx: map[string]any{"analysisConcurrency": "lots"}, wantErr: "context analysisConcurrency"},
		{name: "unknown stage", ctx: map[string]any{"stage": "staging"}, wantErr: `context stage: stage "staging" is not valid`},
		{name: "local stage is not deployable", ctx: map[string]any{"stage": "local"}, wantErr: `context stage`},
		{name: "empty stage", ctx: map[string]any{"stage": ""}, wantErr: `context stage`},
		{name: "negative rate", ctx: map[string]any{"polygonCallsPerMinute": "-1"}, wantErr: "context polygonCallsPerMinute"},
		{name: "fractional rate", ctx: map[string]any{"polygonCallsPerMinute": float64(2.5)}, wantErr: "context polygonCallsPerMinute"},
		{name: "empty portfolio", ctx: map[string]any{"analysisPortfolio": " "}, wantErr: "context analysisPortfolio"},
		{name: "bad email", ctx: map[string]any{"alarmEmail": "ops.example.com"}, wantErr: "context alarmEmail"},
		{name: "import from the CLI", ctx: map[string]any{"stage": "prod", "importTables": "true"},
			want: Config{Stage: "prod", PolygonCallsPerMinute: 5, AnalysisPortfolio: "*", AnalysisConcurrency: 10, ModelProvider: "xai", AnalysisManager: "model", AssetsDir: "dist", ImportTables: true}},
		{name: "import off", ctx: map[string]any{"importTables": false},
			want: Config{Stage: "dev", PolygonCallsPerMinute: 5, AnalysisPortfolio: "*", AnalysisConcurrency: 10, ModelProvider: "xai", AnalysisManager: "model", AssetsDir: "dist"}},
		{name: "bad import flag", ctx: map[string]any{"importTables": "yes please"}, wantErr: "context importTables"},
		{name: "model provider", ctx: map[string]any{"modelProvider": "xai"},
			want: Config{Stage: "dev", PolygonCallsPerMinute: 5, AnalysisPortfolio: "*", AnalysisConcurrency: 10, ModelProvider: "xai", AnalysisManager: "model", AssetsDir: "dist"}},
		{name: "unknown model provider", ctx: map[string]any{"modelProvider": "openai"}, wantErr: `context modelProvider: "openai" is not a model provider (one of xai)`},
		{name: "the rules as the portfolio manager", ctx: map[string]any{"analysisManager": "rules"},
			want: Config{Stage: "dev", PolygonCallsPerMinute: 5, AnalysisPortfolio: "*", AnalysisConcurrency: 10, ModelProvider: "xai", AnalysisManager: "rules", AssetsDir: "dist"}},
		{name: "unknown portfolio manager", ctx: map[string]any{"analysisManager": "llm"}, wantErr: `context analysisManager: "llm" is not a portfolio manager (one of model, rules)`},
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
		if n := len(resources(s, "AWS::DynamoDB::Table")); n != 4 {
			t.Fatalf("%d tables, want 4 (the shared tables are imported, not created)", n)
		}
		for _, spec := range []deploy.Table{deploy.TickerData, deploy.DailyBars, deploy.PortfolioAnalyses, deploy.AnalysisReservations} {
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
			// daily-bars expires its bars (decision 0002), the reservations
			// their leases; the others keep every item.
			wantTTL := "null"
			if spec.TTLAttribute != "" {
				wantTTL = `{"AttributeName":"` + spec.TTLAttribute + `","Enabled":true}`
			}
			if got := compact(p["TimeToLiveSpecification"]); got != wantTTL {
				t.Errorf("%s TTL %s, want %s", id, got, wantTTL)
			}
			if p["GlobalSecondaryIndexes"] != nil || p["LocalSecondaryIndexes"] != nil {
				t.Errorf("%s has secondary indexes; the IAM grants assume none", id)
			}
			// prod: retained on delete and replace, but not when the create
			// that made it rolls back (RetainExceptOnCreate).
			wantPolicy, wantReplace, wantProtection := "Delete", "Delete", false
			if stage == "prod" {
				wantPolicy, wantReplace, wantProtection = "RetainExceptOnCreate", "Retain", true
			}
			if r["DeletionPolicy"] != wantPolicy || r["UpdateReplacePolicy"] != wantReplace {
				t.Errorf("%s deletion/update-replace policy %v/%v, want %s/%s", id, r["DeletionPolicy"], r["UpdateReplacePolicy"], wantPolicy, wantReplace)
			}
			if got, _ := p["DeletionProtectionEnabled"].(bool); got != wantProtection {
				t.Errorf("%s deletion protection %v, want %v", id, p["DeletionProtectionEnabled"], wantProtection)
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
		env: []string{"TICKER_DATA_TABLE", "DAILY_BARS_TABLE", "POLYGON_BASE_URL", "POLYGON_CALLS_PER_MINUTE", "API_KEYS_SECRET_ARN",
			"TICKER_QUEUE_URL", "TICKER_DLQ_URL", "TICKER_MESSAGE_GROUPS"}},
	{name: "analyzePortfolio", memory: 256, timeout: 300, secret: true, schedule: true,
		env: []string{"USER_PORTFOLIOS_TABLE", "PORTFOLIO_POSITIONS_TABLE", "TICKER_DATA_TABLE", "PORTFOLIO_ANALYSES_TABLE",
			"ANALYSIS_RESERVATIONS_TABLE", "ANALYSIS_QUEUE_URL", "DEFAULT_PORTFOLIO", "XAI_API_URL", "XAI_MODEL", "XAI_MAX_COMPLETION_TOKENS",
			"XAI_REASONING_EFFORT", "XAI_ATTEMPT_TIMEOUT", "XAI_RESERVE", "MODEL_PROVIDER", "ANALYSIS_MANAGER", "API_KEYS_SECRET_ARN"}},
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
		assets := functionAssets(t, s)
		dirOf := map[string]string{"processTickers": "processtickers", "processTicker": "processticker", "analyzePortfolio": "analyzeportfolio"}
		for _, w := range wantFunctions {
			id, p := fn(t, s, w.name, stage)
			if p["Runtime"] != "provided.al2023" || p["Handler"] != "bootstrap" || compact(p["Architectures"]) != `["arm64"]` {
				t.Errorf("%s runtime %v handler %v architectures %v", id, p["Runtime"], p["Handler"], p["Architectures"])
			}
			if p["MemorySize"] != w.memory || p["Timeout"] != w.timeout {
				t.Errorf("%s memory %v timeout %v, want %v and %v", id, p["MemorySize"], p["Timeout"], w.memory, w.timeout)
			}
			// Code is the asset holding this function's own bootstrap.
			meta, _ := resources(s, "AWS::Lambda::Function")[id]["Metadata"].(map[string]any)
			hash := assets[dirOf[w.name]]
			if hash == "" {
				t.Fatalf("no asset holds the bootstrap of %s", w.name)
			}
			if meta["aws:asset:property"] != "Code" || meta["aws:asset:path"] != "asset."+hash {
				t.Errorf("%s code asset %v, want asset.%s (the asset of lambdas/%s)", id, meta, hash, dirOf[w.name])
			}
			code, _ := p["Code"].(map[string]any)
			if code["S3Key"] != hash+".zip" || !strings.Contains(compact(code["S3Bucket"]), "cdk-hnb659fds-assets-") {
				t.Errorf("%s code %s, want s3://<assets bucket>/%s.zip (the bootstrap of lambdas/%s)", id, compact(code), hash, dirOf[w.name])
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
			wantDays, wantPolicy, wantReplace := 30.0, "Delete", "Delete"
			if stage == "prod" {
				wantDays, wantPolicy, wantReplace = 90, "RetainExceptOnCreate", "Retain"
			}
			if props(lg)["RetentionInDays"] != wantDays || lg["DeletionPolicy"] != wantPolicy || lg["UpdateReplacePolicy"] != wantReplace {
				t.Errorf("log group %s retention %v deletion %v/%v, want %v days, %s/%s", lgID, props(lg)["RetentionInDays"],
					lg["DeletionPolicy"], lg["UpdateReplacePolicy"], wantDays, wantPolicy, wantReplace)
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
			// Recursive loop detection on, explicitly: processTicker sends to
			// the queue that triggers it (bounded re-queue, 5 attempts, far
			// below the 16 hops Lambda allows); a loop that is not bounded must
			// be stopped, and the message then reaches the DLQ and its alarm.
			if p["RecursiveLoop"] != "Terminate" {
				t.Errorf("%s RecursiveLoop %v, want Terminate set explicitly", id, p["RecursiveLoop"])
			}
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
	analysisQueueID, _ := one(t, s, "AWS::SQS::Queue", "QueueName", "portfolio-analysis-queue-"+stage)
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
		case "ANALYSIS_RESERVATIONS_TABLE":
			ok = ref(v) == tableID("analysis-reservations-"+stage)
		case "ANALYSIS_QUEUE_URL":
			ok = ref(v) == analysisQueueID
		case "XAI_REASONING_EFFORT":
			ok = v == "low"
		case "XAI_ATTEMPT_TIMEOUT":
			ok = v == "2m0s"
		case "XAI_RESERVE":
			ok = v == "15s"
		case "MODEL_PROVIDER":
			ok = v == "xai"
		case "ANALYSIS_MANAGER":
			ok = v == "model"
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
		case "XAI_API_URL":
			ok = v == "https://api.x.ai/v1/chat/completions"
		case "XAI_MODEL":
			ok = v == "grok-4.3"
		case "XAI_MAX_COMPLETION_TOKENS":
			ok = v == "16000"
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
		want, wantReplace := "Delete", "Delete"
		if stage == "prod" {
			want, wantReplace = "RetainExceptOnCreate", "Retain"
		}
		if r["DeletionPolicy"] != want || r["UpdateReplacePolicy"] != wantReplace {
			t.Errorf("%s deletion/update-replace policy %v/%v, want %s/%s", id, r["DeletionPolicy"], r["UpdateReplacePolicy"], want, wantReplace)
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
		if n := len(resources(s, "AWS::Lambda::EventSourceMapping")); n != 2 {
			t.Errorf("%d event source mappings, want 2 (ticker queue, analysis queue)", n)
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

// The analysis queue: standard, its DLQ after 5 receives, visibility at
// least 6 × analyzePortfolio's timeout, consumed by analyzePortfolio one
// message per invocation with partial batch responses and the configured
// maximum concurrency (docs/decisions/0003-analysis-fan-out.md).
func TestAnalysisQueue(t *testing.T) {
	forEachStage(t, func(t *testing.T, stage string, s *synthesized) {
		qID, q := one(t, s, "AWS::SQS::Queue", "QueueName", "portfolio-analysis-queue-"+stage)
		dID, d := one(t, s, "AWS::SQS::Queue", "QueueName", "portfolio-analysis-dlq-"+stage)
		for id, p := range map[string]map[string]any{qID: props(q), dID: props(d)} {
			if p["FifoQueue"] != nil {
				t.Errorf("%s is FIFO, want a standard queue", id)
			}
		}
		rp, _ := props(q)["RedrivePolicy"].(map[string]any)
		if ref(rp["deadLetterTargetArn"]) != dID {
			t.Errorf("redrive target %v, want %s", rp["deadLetterTargetArn"], dID)
		}
		if n, _ := rp["maxReceiveCount"].(float64); n < 5 {
			t.Errorf("maxReceiveCount %v, want at least 5", rp["maxReceiveCount"])
		}
		consumerID, consumer := fn(t, s, "analyzePortfolio", stage)
		if vis, timeout := props(q)["VisibilityTimeout"].(float64), consumer["Timeout"].(float64); vis < 6*timeout {
			t.Errorf("visibility timeout %v s < 6 x consumer timeout %v s", vis, timeout)
		}
		var esm map[string]any
		for _, r := range resources(s, "AWS::Lambda::EventSourceMapping") {
			if ref(props(r)["EventSourceArn"]) == qID {
				esm = props(r)
			}
		}
		if esm == nil {
			t.Fatal("no event source mapping reads the analysis queue")
		}
		if ref(esm["FunctionName"]) != consumerID {
			t.Errorf("analysis queue is consumed by %v, want analyzePortfolio %s", esm["FunctionName"], consumerID)
		}
		if esm["BatchSize"] != 1.0 || compact(esm["FunctionResponseTypes"]) != `["ReportBatchItemFailures"]` ||
			compact(esm["ScalingConfig"]) != `{"MaximumConcurrency":10}` {
			t.Errorf("event source %s, want batch 1, partial batch responses, at most 10 at once", compact(esm))
		}
	})
}

func TestEveryQueueIsEncryptedAndEnforcesSSL(t *testing.T) {
	forEachStage(t, func(t *testing.T, stage string, s *synthesized) {
		queues := resources(s, "AWS::SQS::Queue")
		if len(queues) != 6 {
			t.Errorf("%d queues, want 6 (ticker queue and DLQ, analysis queue and DLQ, schedule DLQ, async failures)", len(queues))
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
		if n := len(resources(s, "AWS::Scheduler::Schedule")); n != 3 || n != len(deploy.Schedules) {
			t.Fatalf("%d schedules, want 3, one per deploy.Schedules entry (%d)", n, len(deploy.Schedules))
		}
		// Each of the contract's schedules, as the contract says: the
		// expression, the input, the target (zsm run plays the same).
		for _, c := range deploy.Schedules {
			_, r := one(t, s, "AWS::Scheduler::Schedule", "Name", c.ScheduleName(stage))
			p := props(r)
			fnID, _ := fn(t, s, c.Target.Name, stage)
			target := p["Target"].(map[string]any)
			if p["ScheduleExpression"] != c.Expression() || p["ScheduleExpressionTimezone"] != deploy.ScheduleTimeZone ||
				ref(target["Arn"]) != fnID || target["Input"] != c.Payload(deploy.DefaultScheduledAnalysis) {
				t.Errorf("schedule %s is not the contract's: %s", c.ScheduleName(stage), compact(p))
			}
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
			{"analyzePortfolio", "cron(0 1 ? * TUE-SAT *)", `{"portfolio_name":"*"}`},
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
	})
}

// The Scheduler's role: assumable by EventBridge Scheduler only for this
// account's schedule group of this stage (Scheduler names the group, not the
// schedule, as aws:SourceArn), allowed to invoke exactly the two scheduled
// functions by the unqualified ARNs the targets call — no "<arn>:*", so no
// IAM5 suppression — and to dead-letter into its queue.
func TestSchedulerRole(t *testing.T) {
	forEachStage(t, func(t *testing.T, stage string, s *synthesized) {
		groupID, _ := one(t, s, "AWS::Scheduler::ScheduleGroup", "Name", "zsm-seven-"+stage)
		if n := len(resources(s, "AWS::Scheduler::ScheduleGroup")); n != 1 {
			t.Errorf("%d schedule groups, want 1", n)
		}
		var roleIDs []string
		for id, r := range resources(s, "AWS::Scheduler::Schedule") {
			p := props(r)
			if p["GroupName"] != "zsm-seven-"+stage {
				t.Errorf("schedule %s is in group %v, want zsm-seven-%s", id, p["GroupName"], stage)
			}
			if !slices.Contains(list(r["DependsOn"]), any(groupID)) {
				t.Errorf("schedule %s does not depend on its group: %v", id, r["DependsOn"])
			}
			roleIDs = append(roleIDs, ref(p["Target"].(map[string]any)["RoleArn"]))
		}
		// processTickers (and its catch-up run) and analyzePortfolio.
		if len(roleIDs) != 3 || roleIDs[0] == "" || roleIDs[0] != roleIDs[1] || roleIDs[1] != roleIDs[2] {
			t.Fatalf("schedule roles %v, want one role for the three schedules", roleIDs)
		}
		roleID := roleIDs[0]
		role := resources(s, "AWS::IAM::Role")[roleID]
		trust := list(props(role)["AssumeRolePolicyDocument"].(map[string]any)["Statement"])
		want := `[{"Action":"sts:AssumeRole","Condition":{"StringEquals":{"aws:SourceAccount":{"Ref":"AWS::AccountId"},` +
			`"aws:SourceArn":{"Fn::GetAtt":["` + groupID + `","Arn"]}}},"Effect":"Allow","Principal":{"Service":"scheduler.amazonaws.com"}}]`
		if compact(trust) != want {
			t.Errorf("scheduler role trust\n got %s\nwant %s", compact(trust), want)
		}
		if props(role)["ManagedPolicyArns"] != nil {
			t.Errorf("scheduler role has managed policies %v", props(role)["ManagedPolicyArns"])
		}
		processTickers, _ := fn(t, s, "processTickers", stage)
		analyzePortfolio, _ := fn(t, s, "analyzePortfolio", stage)
		dlq, _ := one(t, s, "AWS::SQS::Queue", "QueueName", "zsm-schedule-dlq-"+stage)
		got := map[string][]string{}
		for _, st := range statements(t, s) {
			if !slices.Contains(st.roles, roleID) {
				continue
			}
			for _, a := range st.actions {
				got[a] = append(got[a], st.resources...)
			}
		}
		for a := range got {
			slices.Sort(got[a])
		}
		arn := func(id string) string { return `{"Fn::GetAtt":["` + id + `","Arn"]}` }
		wantInvoke := []string{arn(processTickers), arn(analyzePortfolio)}
		slices.Sort(wantInvoke)
		wantGot := map[string][]string{"lambda:InvokeFunction": wantInvoke, "sqs:SendMessage": {arn(dlq)}}
		if compact(got) != compact(wantGot) {
			t.Errorf("scheduler role may\n %s\nwant\n %s", compact(got), compact(wantGot))
		}
	})
}

// cdk-nag suppressions are few, each on one resource, each with a reason, and
// exactly the ones docs/infrastructure.md lists.
func TestNagSuppressionsAreTheDocumentedOnes(t *testing.T) {
	forEachStage(t, func(t *testing.T, stage string, s *synthesized) {
		secret, _ := one(t, s, "AWS::SecretsManager::Secret", "Name", "zsm-seven/"+stage+"/api-keys")
		scheduleDLQ, _ := one(t, s, "AWS::SQS::Queue", "QueueName", "zsm-schedule-dlq-"+stage)
		async, _ := one(t, s, "AWS::SQS::Queue", "QueueName", "zsm-async-failures-"+stage)
		want := []string{secret + " AwsSolutions-SMG4", scheduleDLQ + " AwsSolutions-SQS3", async + " AwsSolutions-SQS3"}
		slices.Sort(want)
		var got []string
		for id, r := range s.doc["Resources"].(map[string]any) {
			meta, _ := r.(map[string]any)["Metadata"].(map[string]any)
			nag, _ := meta["cdk_nag"].(map[string]any)
			for _, rule := range list(nag["rules_to_suppress"]) {
				rule := rule.(map[string]any)
				got = append(got, id+" "+rule["id"].(string))
				if reason, _ := rule["reason"].(string); len(reason) < 60 {
					t.Errorf("%s suppresses %s with too short a reason: %q", id, rule["id"], reason)
				}
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("cdk-nag suppressions %v, want %v", got, want)
		}
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
		reservations, _ := one(t, s, "AWS::DynamoDB::Table", "TableName", "analysis-reservations-"+stage)
		analysisQueue, _ := one(t, s, "AWS::SQS::Queue", "QueueName", "portfolio-analysis-queue-"+stage)
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
				dailyBars: "dynamodb:BatchWriteItem dynamodb:GetItem dynamodb:PutItem dynamodb:Query dynamodb:UpdateItem",
				// Consumed through the event source; re-queue and dead-letter
				// sends by processTicker itself (sqsqueue.Requeuer).
				queue: "sqs:ChangeMessageVisibility sqs:DeleteMessage sqs:GetQueueAttributes sqs:GetQueueUrl sqs:ReceiveMessage sqs:SendMessage",
				dlq:   "sqs:SendMessage",
			},
			"analyzePortfolio": {
				"user-portfolios-" + stage: sharedRead, "portfolio-positions-" + stage: sharedRead,
				tickerData: "dynamodb:Query", analyses: "dynamodb:PutItem dynamodb:Query",
				reservations: "dynamodb:BatchGetItem dynamodb:GetItem dynamodb:PutItem",
				// Consumed through the event source; the fan-out sends to it.
				analysisQueue: "sqs:ChangeMessageVisibility sqs:DeleteMessage sqs:GetQueueAttributes sqs:GetQueueUrl sqs:ReceiveMessage sqs:SendMessage",
				secret:        "secretsmanager:GetSecretValue", async: asyncSend,
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
		reservationsTable, _ := one(t, s, "AWS::DynamoDB::Table", "TableName", "analysis-reservations-"+stage)
		analysisQueue, _ := one(t, s, "AWS::SQS::Queue", "QueueName", "portfolio-analysis-queue-"+stage)
		analysisDLQ, _ := one(t, s, "AWS::SQS::Queue", "QueueName", "portfolio-analysis-dlq-"+stage)
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
		// The analysis queue has no visibility adapter: of what is granted on
		// it besides the event source's consume actions, only the send.
		sendOnly := func(actions []string) []string {
			return slices.DeleteFunc(sqsSend(actions), func(a string) bool { return a != "sqs:SendMessage" })
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
			{"analysis-reservations", reservationsTable, granted[reservationsTable], methods("dynamodb:", reflect.TypeFor[reservationdb.DynamoDBAPI]())},
			// analyzePortfolio's fan-out sends with sqsqueue.BatchSender (the
			// wiring's sender); nothing sends to the analysis DLQ (SQS moves
			// messages there).
			{"analysis queue (send)", analysisQueue, sendOnly(granted[analysisQueue]), methods("sqs:", reflect.TypeFor[sqsqueue.BatchSender]())},
			{"analysis dead-letter queue", analysisDLQ, granted[analysisDLQ], ""},
			{"api-keys secret", secret, granted[secret], methods("secretsmanager:", reflect.TypeFor[secrets.SecretsManagerAPI]())},
			// processTickers' publisher and processTicker's requeuer share
			// sqsqueue.SQSAPI, and processTicker's visibility adapter uses
			// sqsqueue.VisibilityAPI on the ticker queue; only the requeuer
			// sends to the dead-letter queue.
			{"ticker queue (send, visibility)", tickerQueue, sqsSend(granted[tickerQueue]),
				union(methods("sqs:", reflect.TypeFor[sqsqueue.SQSAPI]()), methods("sqs:", reflect.TypeFor[sqsqueue.VisibilityAPI]()))},
			{"ticker dead-letter queue (send)", tickerDLQ, sqsSend(granted[tickerDLQ]), methods("sqs:", reflect.TypeFor[sqsqueue.SQSAPI]())},
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
		// Dead-letter queues: an alarm when one grew, which clears at the next
		// period while old messages wait, so a new failure notifies again. No
		// alarm on "visible > 0": it would stay red until the DLQ is drained.
		for _, q := range []string{"ticker-processing-dlq-" + stage + ".fifo", "zsm-schedule-dlq-" + stage, "zsm-async-failures-" + stage} {
			qID, _ := one(t, s, "AWS::SQS::Queue", "QueueName", q)
			dlqGrewAlarm(t, alarms, qID, q)
		}
		for id, r := range alarms {
			if props(r)["MetricName"] == "ApproximateNumberOfMessagesVisible" {
				t.Errorf("alarm %s is on the plain visible count: it stays in ALARM while a DLQ is undrained and hides new failures", id)
			}
		}
		// The ticker queue: its oldest message older than 3 hours means the
		// consumer is not consuming (a disabled event source would otherwise
		// show only in the 74 h freshness alarm).
		qID, _ := one(t, s, "AWS::SQS::Queue", "QueueName", "ticker-processing-queue-"+stage+".fifo")
		oldestMessageAlarm(t, alarms, qID, "ticker queue")
		for _, w := range wantFunctions {
			fnID, _ := fn(t, s, w.name, stage)
			above0(find("AWS/Lambda", "Errors", map[string]string{"FunctionName": fnID}), w.name+" errors")
		}
		// The alarms on the service's own metrics are the contract's: each
		// watches its metrics (summed, missing periods as 0, when several)
		// with its comparison, threshold and periods.
		for _, c := range deploy.Alarms {
			var p map[string]any
			for _, r := range alarms {
				if pp := props(r); pp["AlarmName"] == deploy.AlarmNamePrefix(stage)+c.Name {
					p = pp
				}
			}
			if p == nil {
				t.Errorf("no alarm %s", c.Name)
				continue
			}
			missing := "notBreaching"
			if c.MissingBreaches {
				missing = "breaching"
			}
			if p["ComparisonOperator"] != string(c.Comparison) || p["Threshold"] != c.Threshold || p["TreatMissingData"] != missing ||
				p["EvaluationPeriods"] != float64(c.EvaluationPeriods) || p["DatapointsToAlarm"] != p["EvaluationPeriods"] {
				t.Errorf("alarm %s: %s", c.Name, compact(p))
			}
			body := compact(p)
			for _, m := range c.Metrics {
				if !containsAll(body, `"MetricName":"`+m.Name+`"`, `"Namespace":"`+deploy.MetricNamespace+`"`, `"Name":"`+deploy.MetricDimension+`","Value":"`+stage+`"`) {
					t.Errorf("alarm %s does not watch %s of stage %s: %s", c.Name, m.Name, stage, body)
				}
			}
			if len(c.Metrics) > 1 && !strings.Contains(body, `"Expression":"FILL(`) {
				t.Errorf("alarm %s does not sum its metrics: %s", c.Name, body)
			}
			// The freshness alarms: longer than the weekend gap between runs
			// (72 h), within CloudWatch's 7-day limit.
			if c.MissingBreaches {
				if window := c.Period * time.Duration(c.EvaluationPeriods); window <= 72*time.Hour || window > 7*24*time.Hour {
					t.Errorf("stale %s window %s", c.Name, window)
				}
			}
		}
		// The analysis queue: oldest message, DLQ grew, failures.
		aqID, _ := one(t, s, "AWS::SQS::Queue", "QueueName", "portfolio-analysis-queue-"+stage)
		adlqID, _ := one(t, s, "AWS::SQS::Queue", "QueueName", "portfolio-analysis-dlq-"+stage)
		p := find("AWS/SQS", "ApproximateAgeOfOldestMessage", map[string]string{"QueueName": aqID})
		if p["ComparisonOperator"] != "GreaterThanThreshold" || p["Threshold"] != 3.0*3600 {
			t.Errorf("analysis queue oldest-message alarm %s", compact(p))
		}
		grew := 0
		for _, r := range alarms {
			pp := props(r)
			m := compact(pp["Metrics"])
			if containsAll(m, `"Expression":"DIFF(FILL(visible, 0))"`, `"MetricName":"ApproximateNumberOfMessagesVisible"`, `"`+adlqID+`"`) &&
				pp["ComparisonOperator"] == "GreaterThanThreshold" && pp["Threshold"] == 0.0 {
				grew++
			}
		}
		if grew != 1 {
			t.Errorf("%d DLQ-grew alarms on the analysis DLQ, want 1", grew)
		}
		// Oldest message and DLQ grew on both work queues, the two failure
		// queues grew, each function's errors, and the contract's.
		if n, want := len(alarms), 2*2+2+len(wantFunctions)+len(deploy.Alarms); n != want {
			t.Errorf("%d alarms, want %d (2 work queues × 2, 2 failure queues, %d functions' errors, %d of the contract)", n, want, len(wantFunctions), len(deploy.Alarms))
		}

		_, d := one(t, s, "AWS::CloudWatch::Dashboard", "DashboardName", "zsm-seven-"+stage)
		body := compact(props(d)["DashboardBody"])
		shown := []string{"ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage", "Invocations", "Errors", "Duration"}
		for _, g := range deploy.DashboardGraphs {
			if !strings.Contains(body, `\"title\":\"`+g.Title+`\"`) {
				t.Errorf("dashboard has no graph %q", g.Title)
			}
			for _, m := range append(append([]deploy.Metric(nil), g.Left...), g.Right...) {
				shown = append(shown, m.Name)
			}
		}
		for _, m := range shown {
			if !strings.Contains(body, `\"`+m+`\"`) {
				t.Errorf("dashboard does not show %s", m)
			}
		}
		// Every alarm is on the dashboard's alarm status widget.
		if !strings.Contains(body, `\"type\":\"alarm\"`) {
			t.Error("dashboard has no alarm status widget")
		}
		for id := range alarms {
			if !strings.Contains(body, `{"Fn::GetAtt":["`+id+`","Arn"]}`) {
				t.Errorf("alarm %s is not on the dashboard", id)
			}
		}
	})
}

// TestContextOverrides synthesizes one more stack with the optional context
// set: the analysis portfolio, the Polygon rate and the alarm email.
func TestContextOverrides(t *testing.T) {
	s := synthWith(t, "dev", map[string]any{
		ctxAnalysisPortfolio: "Growth Fund", ctxPolygonCallsPerMinute: "100", ctxAlarmEmail: "ops@example.com", ctxAnalysisConcurrency: "25",
	})
	for _, r := range resources(s, "AWS::Lambda::EventSourceMapping") {
		if p := props(r); p["BatchSize"] == 1.0 && compact(p["ScalingConfig"]) != `{"MaximumConcurrency":25}` {
			t.Errorf("analysis event source %s, want MaximumConcurrency 25", compact(p["ScalingConfig"]))
		}
	}
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

// The alarm topic's policy replaces SNS's default one, so it must itself let
// CloudWatch publish: a policy with only the TLS Deny makes every alarm action
// fail ("not authorized to perform: SNS:Publish ... because no resource-based
// policy allows"). The Allow is limited to this account and this stage's
// alarms, and every alarm of the stack falls under it.
func TestAlarmTopicLetsTheStagesAlarmsPublish(t *testing.T) {
	forEachStage(t, func(t *testing.T, stage string, s *synthesized) {
		topicID, _ := one(t, s, "AWS::SNS::Topic", "TopicName", "zsm-alarms-"+stage)
		var policies []map[string]any
		for _, r := range resources(s, "AWS::SNS::TopicPolicy") {
			if strings.Contains(compact(props(r)["Topics"]), `"`+topicID+`"`) {
				policies = append(policies, props(r))
			}
		}
		if len(policies) != 1 {
			t.Fatalf("%d policies on the alarm topic, want 1 (a second one would replace the first)", len(policies))
		}
		sts := list(policies[0]["PolicyDocument"].(map[string]any)["Statement"])
		if len(sts) != 2 {
			t.Fatalf("topic policy has %d statements, want the TLS Deny and the CloudWatch Allow: %s", len(sts), compact(sts))
		}
		var deny, allow map[string]any
		for _, st := range sts {
			st := st.(map[string]any)
			switch st["Effect"] {
			case "Deny":
				deny = st
			case "Allow":
				allow = st
			}
		}
		if deny == nil || compact(deny["Condition"]) != `{"Bool":{"aws:SecureTransport":"false"}}` ||
			compact(deny["Principal"]) != `"*"` || deny["Action"] != "sns:Publish" || ref(deny["Resource"]) != topicID {
			t.Errorf("TLS deny %s", compact(deny))
		}
		if allow == nil {
			t.Fatal("no Allow statement: CloudWatch cannot publish any alarm")
		}
		if compact(allow["Principal"]) != `{"Service":"cloudwatch.amazonaws.com"}` || allow["Action"] != "sns:Publish" || ref(allow["Resource"]) != topicID {
			t.Errorf("allow statement %s, want sns:Publish by cloudwatch.amazonaws.com on the topic", compact(allow))
		}
		cond, _ := allow["Condition"].(map[string]any)
		if len(cond) != 2 {
			t.Errorf("allow conditions %s, want StringEquals aws:SourceAccount and ArnLike aws:SourceArn", compact(cond))
		}
		eq, _ := cond["StringEquals"].(map[string]any)
		if len(eq) != 1 || compact(eq["aws:SourceAccount"]) != `{"Ref":"AWS::AccountId"}` {
			t.Errorf("aws:SourceAccount condition %s, want this account", compact(eq))
		}
		like, _ := cond["ArnLike"].(map[string]any)
		if len(like) != 1 {
			t.Fatalf("ArnLike condition %s, want aws:SourceArn only", compact(like))
		}
		pattern := resolve(t, like["aws:SourceArn"])
		if pattern != "arn:aws:cloudwatch:us-east-1:111122223333:alarm:zsm-"+stage+"-*" {
			t.Errorf("aws:SourceArn %q, want the stage's alarms", pattern)
		}
		alarms := resources(s, "AWS::CloudWatch::Alarm")
		if len(alarms) == 0 {
			t.Fatal("no alarms")
		}
		for id, r := range alarms {
			arn := "arn:aws:cloudwatch:us-east-1:111122223333:alarm:" + props(r)["AlarmName"].(string)
			if !arnLike(pattern, arn) {
				t.Errorf("alarm %s (%s) is not allowed to publish by %q", id, arn, pattern)
			}
		}
		other := map[string]string{"dev": "prod", "prod": "dev"}[stage]
		for _, arn := range []string{
			"arn:aws:cloudwatch:us-east-1:111122223333:alarm:zsm-" + other + "-processTicker-errors",
			"arn:aws:cloudwatch:us-east-1:111122223333:alarm:someone-else",
		} {
			if arnLike(pattern, arn) {
				t.Errorf("%q lets %s publish", pattern, arn)
			}
		}
	})
}

// namedProperties are the properties that give a resource a fixed physical
// name: a second resource of that name cannot be created while one exists.
var namedProperties = []string{"TableName", "LogGroupName", "QueueName", "FunctionName", "TopicName", "AlarmName",
	"DashboardName", "Name", "RoleName", "ScheduleGroupName"}

// A failed first deploy must not block the next one. CloudFormation keeps a
// Retain resource even when the create that made it rolls back; with a fixed
// name, every later deploy then fails with "already exists". So no resource
// with a fixed name is plainly Retain: what must survive (prod data, the
// secret, prod logs) is RetainExceptOnCreate, everything else is deleted.
func TestAFailedFirstCreateLeavesNoNamedResourceBehind(t *testing.T) {
	forEachStage(t, func(t *testing.T, stage string, s *synthesized) {
		kept := map[string]bool{}
		for id, r := range s.doc["Resources"].(map[string]any) {
			r := r.(map[string]any)
			named := ""
			for _, k := range namedProperties {
				if v, ok := props(r)[k].(string); ok {
					named = v
				}
			}
			if named == "" {
				continue
			}
			switch dp, _ := r["DeletionPolicy"].(string); dp {
			case "", "Delete":
			case "RetainExceptOnCreate":
				kept[r["Type"].(string)] = true
				if r["UpdateReplacePolicy"] != "Retain" {
					t.Errorf("%s (%s) is retained on delete but not on replacement: %v", id, named, r["UpdateReplacePolicy"])
				}
			default:
				t.Errorf("%s (%s) has DeletionPolicy %s: a rolled-back first create would leave it behind and block the next deploy", id, named, dp)
			}
		}
		want := map[string]bool{}
		if stage == "prod" {
			want = map[string]bool{"AWS::DynamoDB::Table": true, "AWS::SecretsManager::Secret": true, "AWS::Logs::LogGroup": true}
		}
		if compact(kept) != compact(want) {
			t.Errorf("types retained on delete: %v, want %v", sortedKeys(kept), sortedKeys(want))
		}
		// Nor can a function re-create its log group outside the stack
		// (Lambda creates /aws/lambda/<name> when it may and the group is
		// missing, e.g. while a stack is being deleted): no role may create
		// log groups.
		for _, st := range statements(t, s) {
			if slices.Contains(st.actions, "logs:CreateLogGroup") {
				t.Errorf("policy %s allows logs:CreateLogGroup", st.policy)
			}
		}
	})
}

// Each dead-letter queue admits only its own source (RedriveAllowPolicy
// byQueue with that queue's ARN); the two failure queues, which receive from
// the Scheduler and from Lambda, admit no queue at all (denyAll).
func TestDeadLetterQueuesAdmitOnlyTheirSource(t *testing.T) {
	forEachStage(t, func(t *testing.T, stage string, s *synthesized) {
		queues := resources(s, "AWS::SQS::Queue")
		sources := map[string]string{} // DLQ id -> source queue name
		for _, q := range queues {
			rp, _ := props(q)["RedrivePolicy"].(map[string]any)
			if rp == nil {
				continue
			}
			sources[ref(rp["deadLetterTargetArn"])] = props(q)["QueueName"].(string)
		}
		if len(sources) == 0 {
			t.Fatal("no queue has a dead-letter queue")
		}
		failure := map[string]bool{"zsm-schedule-dlq-" + stage: true, "zsm-async-failures-" + stage: true}
		for id, q := range queues {
			p := props(q)
			name := p["QueueName"].(string)
			rap, _ := p["RedriveAllowPolicy"].(map[string]any)
			switch {
			case sources[id] != "":
				want := "arn:aws:sqs:us-east-1:111122223333:" + sources[id]
				arns := list(rap["sourceQueueArns"])
				if rap["redrivePermission"] != "byQueue" || len(arns) != 1 || resolve(t, arns[0]) != want {
					t.Errorf("DLQ %s redrive allow policy %s, want byQueue [%s]", name, compact(rap), want)
				}
				if (p["FifoQueue"] == true) != strings.HasSuffix(sources[id], ".fifo") {
					t.Errorf("DLQ %s FIFO %v does not match its source %s", name, p["FifoQueue"], sources[id])
				}
			case failure[name]:
				if compact(rap) != `{"redrivePermission":"denyAll"}` {
					t.Errorf("failure queue %s redrive allow policy %s, want denyAll", name, compact(rap))
				}
			case rap != nil:
				t.Errorf("queue %s is no dead-letter queue but has a redrive allow policy %s", name, compact(rap))
			}
		}
	})
}

// The secret's generate block is frozen. CloudFormation regenerates a secret's
// value whenever GenerateSecretString changes: the next deploy would replace
// the keys operators put with the template's empty ones (and a new random
// "unused"), and processTicker and analyzePortfolio would run without keys
// from their next cold start. Change this block only together with a step that
// puts the keys back (runbook: Change the API keys), and update this test in
// the same change.
func TestSecretGenerateBlockIsFrozen(t *testing.T) {
	const frozen = `{"ExcludePunctuation":true,"GenerateStringKey":"unused","PasswordLength":8,` +
		`"SecretStringTemplate":"{\"POLYGON_API_KEY\":\"\",\"XAI_API_KEY\":\"\"}"}`
	forEachStage(t, func(t *testing.T, stage string, s *synthesized) {
		_, r := one(t, s, "AWS::SecretsManager::Secret", "Name", "zsm-seven/"+stage+"/api-keys")
		if got := compact(props(r)["GenerateSecretString"]); got != frozen {
			t.Errorf("GenerateSecretString changed: a deploy would regenerate the secret and blank the API keys operators set.\n got %s\nwant %s", got, frozen)
		}
	})
}

// dlqGrewAlarm checks the one alarm on a dead-letter queue: metric math
// DIFF(FILL(visible, 0)) over the Maximum of ApproximateNumberOfMessagesVisible
// in 5 minutes, above 0 in one period, missing data not breaching.
func dlqGrewAlarm(t *testing.T, alarms map[string]map[string]any, queueID, what string) {
	t.Helper()
	var found []map[string]any
	for _, r := range alarms {
		if strings.Contains(compact(props(r)["Metrics"]), `{"Fn::GetAtt":["`+queueID+`","QueueName"]}`) {
			found = append(found, props(r))
		}
	}
	if len(found) != 1 {
		t.Errorf("%d alarms on %s, want 1 (DLQ grew)", len(found), what)
		return
	}
	p := found[0]
	if p["ComparisonOperator"] != "GreaterThanThreshold" || p["Threshold"] != 0.0 || p["TreatMissingData"] != "notBreaching" ||
		p["EvaluationPeriods"] != 1.0 || p["DatapointsToAlarm"] != 1.0 {
		t.Errorf("%s DLQ-grew alarm %s %v, %v of %v, missing %v", what, p["ComparisonOperator"], p["Threshold"],
			p["DatapointsToAlarm"], p["EvaluationPeriods"], p["TreatMissingData"])
	}
	var expr, stat map[string]any
	for _, m := range list(p["Metrics"]) {
		m := m.(map[string]any)
		if m["Expression"] != nil {
			expr = m
		} else {
			stat = m
		}
	}
	if len(list(p["Metrics"])) != 2 || expr == nil || stat == nil {
		t.Fatalf("%s DLQ-grew metrics %s, want one expression over one metric", what, compact(p["Metrics"]))
	}
	if expr["Expression"] != "DIFF(FILL("+stat["Id"].(string)+", 0))" || expr["ReturnData"] != true || stat["ReturnData"] != false {
		t.Errorf("%s DLQ-grew expression %s", what, compact(expr))
	}
	ms := stat["MetricStat"].(map[string]any)
	m := ms["Metric"].(map[string]any)
	if m["Namespace"] != "AWS/SQS" || m["MetricName"] != "ApproximateNumberOfMessagesVisible" || ms["Stat"] != "Maximum" || ms["Period"] != 300.0 ||
		compact(m["Dimensions"]) != `[{"Name":"QueueName","Value":{"Fn::GetAtt":["`+queueID+`","QueueName"]}}]` {
		t.Errorf("%s DLQ-grew metric %s", what, compact(ms))
	}
}

// oldestMessageAlarm checks the alarm on a work queue's oldest message: the
// Maximum of ApproximateAgeOfOldestMessage over 5 minutes above 3 hours.
func oldestMessageAlarm(t *testing.T, alarms map[string]map[string]any, queueID, what string) {
	t.Helper()
	var found []map[string]any
	for _, r := range alarms {
		p := props(r)
		if p["MetricName"] == "ApproximateAgeOfOldestMessage" &&
			compact(p["Dimensions"]) == `[{"Name":"QueueName","Value":{"Fn::GetAtt":["`+queueID+`","QueueName"]}}]` {
			found = append(found, p)
		}
	}
	if len(found) != 1 {
		t.Errorf("%d oldest-message alarms on %s, want 1", len(found), what)
		return
	}
	p := found[0]
	if p["Namespace"] != "AWS/SQS" || p["Statistic"] != "Maximum" || p["Period"] != 300.0 || p["Threshold"] != 3*3600.0 ||
		p["ComparisonOperator"] != "GreaterThanThreshold" || p["TreatMissingData"] != "notBreaching" || p["EvaluationPeriods"] != 1.0 {
		t.Errorf("%s oldest-message alarm %s", what, compact(p))
	}
}

// The analysis queue (a standard queue with its own DLQ, consumed by
// analyzePortfolio) is still to come; it gets its dead-letter queue and both
// queue alarms from the same two helpers, with one call each.
func TestQueueHelpersServeAStandardQueue(t *testing.T) {
	noPanic(t, func() {
		app := awscdk.NewApp(nil)
		stack := awscdk.NewStack(app, jsii.String("QueueHelpers"), nil)
		dlq := newDeadLetterQueue(stack, "AnalysisDLQ", "zsm-analysis-dlq-dev", "zsm-analysis-queue-dev")
		q := awssqs.NewQueue(stack, jsii.String("AnalysisQueue"), &awssqs.QueueProps{
			QueueName:       jsii.String("zsm-analysis-queue-dev"),
			DeadLetterQueue: &awssqs.DeadLetterQueue{Queue: dlq, MaxReceiveCount: jsii.Number(5)},
		})
		topic := awssns.NewTopic(stack, jsii.String("Topic"), nil)
		a := &alarmSet{scope: stack, stage: "dev", action: awscloudwatchactions.NewSnsAction(topic)}
		a.queueAlarms("AnalysisQueue", "analysis", q, dlq)

		raw, err := json.Marshal(assertions.Template_FromStack(stack, nil).ToJSON())
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatal(err)
		}
		s := &synthesized{doc: doc}
		qID, _ := one(t, s, "AWS::SQS::Queue", "QueueName", "zsm-analysis-queue-dev")
		dID, d := one(t, s, "AWS::SQS::Queue", "QueueName", "zsm-analysis-dlq-dev")
		if props(d)["FifoQueue"] != nil {
			t.Errorf("the DLQ of a standard queue is FIFO: %s", compact(props(d)))
		}
		rap := props(d)["RedriveAllowPolicy"].(map[string]any)
		if rap["redrivePermission"] != "byQueue" || resolve(t, list(rap["sourceQueueArns"])[0]) != "arn:aws:sqs:us-east-1:111122223333:zsm-analysis-queue-dev" {
			t.Errorf("analysis DLQ redrive allow policy %s", compact(rap))
		}
		alarms := resources(s, "AWS::CloudWatch::Alarm")
		if len(alarms) != 2 {
			t.Fatalf("%d alarms from one queueAlarms call, want 2", len(alarms))
		}
		names := []string{}
		for _, r := range alarms {
			names = append(names, props(r)["AlarmName"].(string))
		}
		slices.Sort(names)
		if !slices.Equal(names, []string{"zsm-dev-analysis-dlq-grew", "zsm-dev-analysis-queue-oldest-message"}) {
			t.Errorf("alarm names %v", names)
		}
		dlqGrewAlarm(t, alarms, dID, "analysis DLQ")
		oldestMessageAlarm(t, alarms, qID, "analysis queue")
	})
}

// The resource mapping `make import` hands to `cdk import` names exactly the
// template's tables that the old Serverless stack owns (ticker-data and
// portfolio-analyses; the tables new with this service are created by the
// deploy after the import): their logical ids and their names (which carry
// the row contract's keys, TestOwnedTables). It is written into the cloud
// assembly beside the template in the CLI's format.
func TestImportMappingMatchesTheTemplate(t *testing.T) {
	forEachStage(t, func(t *testing.T, stage string, s *synthesized) {
		var m map[string]map[string]string
		noPanic(t, func() { m = importMapping(s.stack, stage) })
		want := map[string]map[string]string{}
		old := []string{deploy.TickerData.Name(stage), deploy.PortfolioAnalyses.Name(stage)}
		for id, r := range resources(s, "AWS::DynamoDB::Table") {
			if !slices.Contains(old, props(r)["TableName"].(string)) {
				continue
			}
			want[id] = map[string]string{"TableName": props(r)["TableName"].(string)}
			if r["DeletionPolicy"] == nil {
				t.Errorf("table %s has no DeletionPolicy; CloudFormation imports only resources with one", id)
			}
		}
		if compact(m) != compact(want) {
			t.Errorf("import mapping %s, want the template's tables %s", compact(m), compact(want))
		}
		names := []string{}
		for _, v := range m {
			names = append(names, v["TableName"])
		}
		slices.Sort(names)
		if !slices.Equal(names, []string{"portfolio-analyses-" + stage, "ticker-data-" + stage}) {
			t.Errorf("mapping names %v", names)
		}

		dir := t.TempDir()
		path, err := writeImportMapping(dir, s.stack, stage)
		if err != nil {
			t.Fatal(err)
		}
		if path != filepath.Join(dir, "ZsmSevenBackend-"+stage+".import-mapping.json") {
			t.Errorf("mapping written to %s", path)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var file map[string]map[string]string
		if err := json.Unmarshal(data, &file); err != nil || compact(file) != compact(want) {
			t.Errorf("mapping file %s: %v", data, err)
		}
	})
}

// With importTables=true (make import) the two tables are what an import can
// vouch for: Retain, and only name, keys, on-demand billing and the managed
// KMS key (the migration checks those first), so the deploy after the import
// applies the rest (PITR, deletion protection, tags) as a real change instead
// of leaving them as silent drift. The logical
// ids, the mapping and every other resource are the same as in the normal
// template, so the import and the deploy after it describe one stack.
func TestImportTemplate(t *testing.T) {
	forEachStage(t, func(t *testing.T, stage string, normal *synthesized) {
		imp := synthWith(t, stage, map[string]any{ctxImportTables: "true"})
		normalTables := resources(normal, "AWS::DynamoDB::Table")
		mapping := importMapping(imp.stack, stage)
		for id, r := range resources(imp, "AWS::DynamoDB::Table") {
			n, ok := normalTables[id]
			if !ok {
				t.Fatalf("import table %s is not in the normal template", id)
			}
			if _, imported := mapping[id]; !imported {
				// New with this service: rendered as always, created by the
				// deploy after the import.
				if compact(r) != compact(n) {
					t.Errorf("table %s is not imported but differs from the normal template", id)
				}
				continue
			}
			if r["DeletionPolicy"] != "Retain" || r["UpdateReplacePolicy"] != "Retain" {
				t.Errorf("import table %s policies %v/%v, want Retain/Retain", id, r["DeletionPolicy"], r["UpdateReplacePolicy"])
			}
			imported := []string{"AttributeDefinitions", "BillingMode", "KeySchema", "SSESpecification", "TableName"}
			if got := sortedKeys(props(r)); !slices.Equal(got, imported) {
				t.Errorf("import table %s has properties %v, want only %v", id, got, imported)
			}
			for _, k := range imported {
				if compact(props(r)[k]) != compact(props(n)[k]) {
					t.Errorf("import table %s %s %s differs from the deployed template's %s", id, k, compact(props(r)[k]), compact(props(n)[k]))
				}
			}
		}
		if len(resources(imp, "AWS::DynamoDB::Table")) != len(normalTables) {
			t.Errorf("import template has %d tables, want %d", len(resources(imp, "AWS::DynamoDB::Table")), len(normalTables))
		}
		for id, r := range normal.doc["Resources"].(map[string]any) {
			if r.(map[string]any)["Type"] == "AWS::DynamoDB::Table" {
				continue
			}
			if compact(imp.doc["Resources"].(map[string]any)[id]) != compact(r) {
				t.Errorf("resource %s differs between the import and the normal template", id)
			}
		}
		if compact(importMapping(imp.stack, stage)) != compact(importMapping(normal.stack, stage)) {
			t.Error("the import mapping differs between the import and the normal template")
		}
	})
}

// The app itself (what `cdk synth`/`make import-plan` run) writes the mapping
// into the cloud assembly next to the template, and the two agree: every
// mapped logical id is a table of that template with that name and a Retain
// policy. This runs the built app as the CDK CLI does (CDK_OUTDIR,
// CDK_CONTEXT_JSON), so it costs one more synthesis.
func TestAppWritesTheImportMappingIntoTheAssembly(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the app: one more synthesis")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "infra-app")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build the app: %v\n%s", err, out)
	}
	ctx := cdkContext(t)
	ctx[ctxStage], ctx[ctxAssetsDir], ctx[ctxImportTables] = "prod", assetsDir, "true"
	ctxJSON, _ := json.Marshal(ctx)
	outdir := filepath.Join(dir, "cdk.out")
	cmd := exec.Command(bin)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CDK_OUTDIR="+outdir, "CDK_CONTEXT_JSON="+string(ctxJSON))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("run the app: %v\n%s", err, out)
	}
	var mapping map[string]map[string]string
	data, err := os.ReadFile(filepath.Join(outdir, "ZsmSevenBackend-prod.import-mapping.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &mapping); err != nil {
		t.Fatal(err)
	}
	var tmpl map[string]any
	data, err = os.ReadFile(filepath.Join(outdir, "ZsmSevenBackend-prod.template.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &tmpl); err != nil {
		t.Fatal(err)
	}
	res := tmpl["Resources"].(map[string]any)
	if len(mapping) != 2 {
		t.Errorf("mapping %v, want the two owned tables", mapping)
	}
	for id, m := range mapping {
		r, _ := res[id].(map[string]any)
		if r == nil || r["Type"] != "AWS::DynamoDB::Table" || props(r)["TableName"] != m["TableName"] || r["DeletionPolicy"] != "Retain" {
			t.Errorf("mapped %s -> %v, template has %s", id, m, compact(r))
		}
	}
}

// A single name in analysisPortfolio (the default is "*": every portfolio)
// schedules just that portfolio, in the scheduled invocation; an event that
// names no portfolio still means the contract's default.
func TestScheduleCanAnalyzeOnePortfolio(t *testing.T) {
	s := synthWith(t, "dev", map[string]any{ctxAnalysisPortfolio: "ZSM Seven"})
	_, r := one(t, s, "AWS::Scheduler::Schedule", "ScheduleExpression", "cron(0 1 ? * TUE-SAT *)")
	if in := props(r)["Target"].(map[string]any)["Input"]; in != `{"portfolio_name":"ZSM Seven"}` {
		t.Errorf("analysis input %v", in)
	}
	_, p := fn(t, s, "analyzePortfolio", "dev")
	if v := p["Environment"].(map[string]any)["Variables"].(map[string]any)["DEFAULT_PORTFOLIO"]; v != "ZSM Seven" {
		t.Errorf("DEFAULT_PORTFOLIO=%v, want the contract's default", v)
	}
}

// The CDK context analysisManager reaches analyzePortfolio's environment,
// and no other function's: the rules as the portfolio manager make no
// overview call in the deployed stage.
func TestAnalysisManagerReachesTheFunction(t *testing.T) {
	for _, c := range []struct {
		ctx  map[string]any
		want string
	}{{nil, deploy.DefaultAnalysisManager}, {map[string]any{"analysisManager": deploy.ManagerRules}, deploy.ManagerRules}} {
		s := synthWith(t, deploy.StageDev, c.ctx)
		var got []string
		for _, r := range resources(s, "AWS::Lambda::Function") {
			env, _ := props(r)["Environment"].(map[string]any)
			if env == nil {
				continue
			}
			if v, ok := env["Variables"].(map[string]any)[deploy.EnvAnalysisManager]; ok {
				got = append(got, props(r)["FunctionName"].(string)+"="+v.(string))
			}
		}
		want := []string{deploy.AnalyzePortfolio.FunctionName(deploy.StageDev) + "=" + c.want}
		if !slices.Equal(got, want) {
			t.Errorf("context %v: %v, want %v", c.ctx, got, want)
		}
	}
}
