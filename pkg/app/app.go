// Package app holds what the wiring of the three functions shares; each
// function is wired in its own package (processtickers, processticker,
// analyzeportfolio), so that each bootstrap links only the SDK clients it
// calls. A function's package builds its adapters from configuration in one
// file: read it to see everything that function talks to.
package app

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"

	"github.com/zsmseven/backend/pkg/config"
)

// AWSConfig loads the SDK's default configuration: the execution role on
// Lambda; locally the AWS_* variables, which point each client at a local
// server (AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL_SQS,
// AWS_ENDPOINT_URL_SECRETS_MANAGER).
func AWSConfig(ctx context.Context) (aws.Config, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS configuration: %w", err)
	}
	return cfg, nil
}

// Load reads a function's configuration with load (config.LoadProcessTicker,
// ...) and the SDK's configuration: the first two steps of every FromEnv.
func Load[C any](ctx context.Context, lookup config.Lookup, load func(config.Lookup) (C, error)) (C, aws.Config, error) {
	cfg, err := load(lookup)
	if err != nil {
		return cfg, aws.Config{}, err
	}
	awsCfg, err := AWSConfig(ctx)
	return cfg, awsCfg, err
}

// Keys resolves an API key by its name in the secret (deploy.SecretKeyPolygon,
// deploy.SecretKeyXAI): secrets.Keys in production.
type Keys interface {
	Get(ctx context.Context, name string) (string, error)
}
