// Command infra is the AWS CDK app of the ZSM Seven backend: one stack per
// deployment stage (ZsmSevenBackend-dev, ZsmSevenBackend-prod). Run it through
// the CDK CLI from the repository root (`make synth`), which reads
// cdk.json for the app command, the context defaults and the feature flags.
//
// The stack is environment-agnostic (no lookups), so synthesis needs no AWS
// credentials. Each concern has its own file: storage.go (tables), queue.go,
// functions.go, schedules.go, secrets.go, monitoring.go, nag.go (cdk-nag checks
// and the justified suppressions).
package main

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/zsmseven/backend/pkg/deploy"
)

// Context keys read by the app (defaults in cdk.json, override with -c key=value).
const (
	ctxStage                 = "stage"
	ctxPolygonCallsPerMinute = "polygonCallsPerMinute"
	ctxAnalysisPortfolio     = "analysisPortfolio"
	ctxAnalysisConcurrency   = "analysisConcurrency"
	ctxModelProvider         = "modelProvider"
	ctxAnalysisManager       = "analysisManager"
	ctxAssetsDir             = "assetsDir"
	ctxAlarmEmail            = "alarmEmail"
	ctxImportTables          = "importTables"
)

// Defaults used when cdk.json does not set a context key.
const (
	defaultAssetsDir = "dist"
)

// Config is everything a stack needs to know about its deployment.
type Config struct {
	// Stage is "dev" or "prod"; it suffixes every physical name.
	Stage string
	// PolygonCallsPerMinute is the Polygon plan's rate (0 = unlimited).
	PolygonCallsPerMinute int
	// AnalysisPortfolio is the portfolio the nightly analysis is run for;
	// "*" fans out to every portfolio.
	AnalysisPortfolio string
	// AnalysisConcurrency is the analysis queue's MaxConcurrency: portfolios
	// analyzed at once (2–1000, Lambda's bounds).
	AnalysisConcurrency int
	// ModelProvider is the analysis model's provider (deploy.ModelProviders).
	ModelProvider string
	// AnalysisManager is who writes a portfolio's overview over the ticker
	// scores: deploy.ManagerModel or deploy.ManagerRules (no model call).
	AnalysisManager string
	// AssetsDir holds <fn>/bootstrap for each function (built by `make build`).
	AssetsDir string
	// AlarmEmail, when set, is subscribed to the alarm topic.
	AlarmEmail string
	// ImportTables renders the owned tables for `cdk import` (make import,
	// docs/migration.md): Retain, and only the properties the existing table
	// is checked to have, so the deploy after the import sets the rest.
	ImportTables bool
}

// ConfigFromContext reads and validates the app's context. Any problem is one
// line naming the context key.
func ConfigFromContext(app awscdk.App) (Config, error) {
	node := app.Node()
	get := func(key string) (string, bool) {
		v := node.TryGetContext(jsii.String(key))
		switch v := v.(type) {
		case nil:
			return "", false
		case string:
			return strings.TrimSpace(v), true
		case float64:
			return strconv.FormatFloat(v, 'f', -1, 64), true
		default:
			return fmt.Sprint(v), true
		}
	}
	cfg := Config{
		Stage:                 deploy.StageDev,
		PolygonCallsPerMinute: deploy.DefaultPolygonCallsPerMinute,
		AnalysisPortfolio:     deploy.DefaultScheduledAnalysis,
		AnalysisConcurrency:   deploy.DefaultAnalysisConcurrency,
		ModelProvider:         deploy.DefaultModelProvider,
		AnalysisManager:       deploy.DefaultAnalysisManager,
		AssetsDir:             defaultAssetsDir,
	}
	if v, ok := get(ctxStage); ok {
		cfg.Stage = v
	}
	if err := deploy.ValidateDeployStage(cfg.Stage); err != nil {
		return Config{}, fmt.Errorf("context %s: %w", ctxStage, err)
	}
	if v, ok := get(ctxPolygonCallsPerMinute); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return Config{}, fmt.Errorf("context %s: %q is not a non-negative integer", ctxPolygonCallsPerMinute, v)
		}
		cfg.PolygonCallsPerMinute = n
	}
	if v, ok := get(ctxAnalysisPortfolio); ok {
		if v == "" || len(v) > 256 {
			return Config{}, fmt.Errorf("context %s: must be a portfolio name of 1 to 256 characters", ctxAnalysisPortfolio)
		}
		cfg.AnalysisPortfolio = v
	}
	if v, ok := get(ctxAnalysisConcurrency); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 2 || n > 1000 {
			return Config{}, fmt.Errorf("context %s: %q is not an integer from 2 to 1000 (the SQS event source's MaxConcurrency)", ctxAnalysisConcurrency, v)
		}
		cfg.AnalysisConcurrency = n
	}
	if v, ok := get(ctxModelProvider); ok {
		if _, known := deploy.ModelProviderByName(v); !known {
			return Config{}, fmt.Errorf("context %s: %q is not a model provider (one of %s)", ctxModelProvider, v, strings.Join(deploy.VarModelProvider.Values, ", "))
		}
		cfg.ModelProvider = v
	}
	if v, ok := get(ctxAnalysisManager); ok {
		if !slices.Contains(deploy.VarAnalysisManager.Values, v) {
			return Config{}, fmt.Errorf("context %s: %q is not a portfolio manager (one of %s)", ctxAnalysisManager, v, strings.Join(deploy.VarAnalysisManager.Values, ", "))
		}
		cfg.AnalysisManager = v
	}
	if v, ok := get(ctxAssetsDir); ok && v != "" {
		cfg.AssetsDir = v
	}
	if v, ok := get(ctxAlarmEmail); ok && v != "" {
		if strings.Count(v, "@") != 1 || strings.ContainsAny(v, " \t,;") {
			return Config{}, fmt.Errorf("context %s: %q is not an email address", ctxAlarmEmail, v)
		}
		cfg.AlarmEmail = v
	}
	if v, ok := get(ctxImportTables); ok && v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return Config{}, fmt.Errorf("context %s: %q is not true or false", ctxImportTables, v)
		}
		cfg.ImportTables = b
	}
	return cfg, nil
}

// settings are the values of the functions' Setting variables that the
// stage's context chooses; the others take the contract's defaults.
func (c Config) settings() map[string]string {
	// The schedule may fan out ("*"); the default portfolio of an event
	// that names none is then the contract's default.
	defaultPortfolio := c.AnalysisPortfolio
	if defaultPortfolio == deploy.AllPortfolios {
		defaultPortfolio = deploy.DefaultPortfolio
	}
	return map[string]string{
		deploy.EnvPolygonCallsPerMinute: strconv.Itoa(c.PolygonCallsPerMinute),
		deploy.EnvDefaultPortfolio:      defaultPortfolio,
		deploy.EnvModelProvider:         c.ModelProvider,
		deploy.EnvAnalysisManager:       c.AnalysisManager,
	}
}

func main() {
	defer jsii.Close()
	app := awscdk.NewApp(nil)
	cfg, err := ConfigFromContext(app)
	if err != nil {
		fmt.Fprintln(os.Stderr, "infra:", err)
		os.Exit(1)
	}
	if err := checkAssets(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "infra:", err)
		os.Exit(1)
	}
	stack := NewStack(app, deploy.StackName(cfg.Stage), &StackProps{Config: cfg})
	asm := app.Synth(nil)
	// Beside the template: the resource mapping `make import` hands to
	// `cdk import`, from the same table definitions as the template.
	if _, err := writeImportMapping(*asm.Directory(), stack, cfg.Stage); err != nil {
		fmt.Fprintln(os.Stderr, "infra:", err)
		os.Exit(1)
	}
}
