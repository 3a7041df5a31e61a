// Package deploy is the deployment contract of the service: the one
// definition of what the CDK stack deploys and what the functions, the local
// stack and the CLI expect to find — stages, the three functions (name,
// directory, timeout, memory), the tables and their keys, the queues, the
// API-key secret and its keys, and every environment variable with its
// default.
//
// It imports nothing from the AWS SDK (nor anything else of this module), so
// infra/ can depend on it without linking an SDK client, and a deployed name
// and a local one cannot drift apart.
package deploy

import "fmt"

// Stages that can be deployed. Local runs use LocalStage.
const (
	StageDev   = "dev"
	StageProd  = "prod"
	LocalStage = "local"
)

// ValidateDeployStage reports whether stage is one that can be deployed.
func ValidateDeployStage(stage string) error {
	switch stage {
	case StageDev, StageProd:
		return nil
	}
	return fmt.Errorf("stage %q is not valid: use %q or %q", stage, StageDev, StageProd)
}

// StackName is the CloudFormation stack of a stage, e.g. "ZsmSevenBackend-dev".
func StackName(stage string) string { return "ZsmSevenBackend-" + stage }

// TickerQueueName is the FIFO queue of ticker messages of a stage.
func TickerQueueName(stage string) string { return "ticker-processing-queue-" + stage + ".fifo" }

// TickerDLQName is the ticker queue's dead-letter queue of a stage.
func TickerDLQName(stage string) string { return "ticker-processing-dlq-" + stage + ".fifo" }

// AnalysisQueueName is the standard queue of analysis messages of a stage:
// one message per portfolio, sent by analyzePortfolio's fan-out and consumed
// by analyzePortfolio itself (docs/decisions/0003-analysis-fan-out.md).
func AnalysisQueueName(stage string) string { return "portfolio-analysis-queue-" + stage }

// AnalysisDLQName is the analysis queue's dead-letter queue of a stage.
func AnalysisDLQName(stage string) string { return "portfolio-analysis-dlq-" + stage }

// SecretName is the stage's Secrets Manager secret holding the API keys, a
// JSON object with the keys SecretKeyPolygon and SecretKeyXAI.
func SecretName(stage string) string { return "zsm-seven/" + stage + "/api-keys" }

// The keys of the API-key secret. Locally, environment variables of the same
// names take precedence over the secret.
const (
	SecretKeyPolygon = EnvPolygonAPIKey
	SecretKeyXAI     = EnvXAIAPIKey
)
