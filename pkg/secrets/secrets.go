// Package secrets reads the service's API keys. In AWS they live in one
// Secrets Manager secret per stage, a JSON object
// keyed by deploy.SecretKeyPolygon and deploy.SecretKeyXAI, read once and cached for
// the life of the execution environment. Locally, the same names in the
// environment take precedence, so no secret is needed.
//
// Key values are never logged or put into errors.
package secrets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// ErrNotSet means the key is neither in the environment nor in the secret.
var ErrNotSet = errors.New("API key not set")

// SecretsManagerAPI is the one call this package needs.
type SecretsManagerAPI interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// Keys resolves API keys from the environment, then from the secret.
type Keys struct {
	lookup    func(string) (string, bool)
	client    SecretsManagerAPI
	secretARN string

	mu     sync.Mutex
	loaded map[string]string
}

// NewKeys returns a resolver. client and secretARN may be nil/empty for local
// use, where only the environment is consulted.
func NewKeys(lookup func(string) (string, bool), client SecretsManagerAPI, secretARN string) *Keys {
	return &Keys{lookup: lookup, client: client, secretARN: secretARN}
}

// Get returns the key called name (deploy.SecretKeyPolygon or
// deploy.SecretKeyXAI: the same name in the environment and in the secret), without
// surrounding whitespace (a pasted key often ends in a newline, which no HTTP
// header can carry); a blank value counts as not set. The secret is fetched
// at most once successfully; a failed fetch is retried on the next call.
func (k *Keys) Get(ctx context.Context, name string) (string, error) {
	if v, ok := k.lookup(name); ok && strings.TrimSpace(v) != "" {
		return strings.TrimSpace(v), nil
	}
	if k.client == nil || k.secretARN == "" {
		return "", fmt.Errorf("%s: %w (no environment variable and no secret configured)", name, ErrNotSet)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.loaded == nil {
		m, err := k.read(ctx)
		if err != nil {
			return "", err
		}
		k.loaded = m
	}
	if v := strings.TrimSpace(k.loaded[name]); v != "" {
		return v, nil
	}
	return "", fmt.Errorf("%s: %w in secret %s", name, ErrNotSet, k.secretARN)
}

// Refresh reads the secret again now, replacing the cached keys: what a
// function does once when the provider refuses a key, since an operator may
// have rotated it while this execution environment was warm. On failure the
// cached keys stay. Without a secret (keys from the environment only) there
// is nothing to re-read and Refresh returns nil.
func (k *Keys) Refresh(ctx context.Context) error {
	if k.client == nil || k.secretARN == "" {
		return nil
	}
	m, err := k.read(ctx)
	if err != nil {
		return err
	}
	k.mu.Lock()
	k.loaded = m
	k.mu.Unlock()
	return nil
}

// read fetches and decodes the secret.
func (k *Keys) read(ctx context.Context) (map[string]string, error) {
	out, err := k.client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(k.secretARN)})
	if err != nil {
		return nil, fmt.Errorf("read secret %s: %w", k.secretARN, err)
	}
	m := map[string]string{}
	if err := json.Unmarshal([]byte(aws.ToString(out.SecretString)), &m); err != nil {
		// Do not wrap the JSON error: its text can quote the secret.
		return nil, fmt.Errorf("secret %s is not a JSON object of strings", k.secretARN)
	}
	return m, nil
}
