package secrets

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/zsmseven/backend/pkg/deploy"
)

type fakeSM struct {
	value string
	err   error
	calls int
}

func (f *fakeSM) GetSecretValue(_ context.Context, in *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	return &secretsmanager.GetSecretValueOutput{SecretString: aws.String(f.value)}, nil
}

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestEnvironmentTakesPrecedence(t *testing.T) {
	sm := &fakeSM{value: `{"POLYGON_API_KEY":"from-secret"}`}
	k := NewKeys(env(map[string]string{deploy.SecretKeyPolygon: "from-env"}), sm, "arn:secret")
	got, err := k.Get(context.Background(), deploy.SecretKeyPolygon)
	if err != nil || got != "from-env" || sm.calls != 0 {
		t.Fatalf("got %q, %v after %d calls", got, err, sm.calls)
	}
}

func TestSecretReadOnceAndCached(t *testing.T) {
	sm := &fakeSM{value: `{"POLYGON_API_KEY":"pk","XAI_API_KEY":"xk"}`}
	k := NewKeys(env(nil), sm, "arn:secret")
	for range 3 {
		if got, err := k.Get(context.Background(), deploy.SecretKeyPolygon); err != nil || got != "pk" {
			t.Fatalf("polygon: %q, %v", got, err)
		}
	}
	if got, _ := k.Get(context.Background(), deploy.SecretKeyXAI); got != "xk" {
		t.Fatalf("xai: %q", got)
	}
	if sm.calls != 1 {
		t.Fatalf("secret fetched %d times, want 1", sm.calls)
	}
}

func TestMissingAndMalformed(t *testing.T) {
	ctx := context.Background()
	if _, err := NewKeys(env(nil), nil, "").Get(ctx, deploy.SecretKeyXAI); !errors.Is(err, ErrNotSet) {
		t.Fatalf("no env, no secret: %v", err)
	}
	if _, err := NewKeys(env(nil), &fakeSM{value: `{"POLYGON_API_KEY":""}`}, "arn").Get(ctx, deploy.SecretKeyPolygon); !errors.Is(err, ErrNotSet) {
		t.Fatalf("empty value in secret: %v", err)
	}
	_, err := NewKeys(env(nil), &fakeSM{value: `not json sk-live-123`}, "arn").Get(ctx, deploy.SecretKeyPolygon)
	if err == nil || strings.Contains(err.Error(), "sk-live-123") {
		t.Fatalf("malformed secret must fail without quoting it: %v", err)
	}
	sm := &fakeSM{err: errors.New("throttled")}
	k := NewKeys(env(nil), sm, "arn")
	_, _ = k.Get(ctx, deploy.SecretKeyPolygon)
	sm.err, sm.value = nil, `{"POLYGON_API_KEY":"pk"}`
	if got, err := k.Get(ctx, deploy.SecretKeyPolygon); err != nil || got != "pk" {
		t.Fatalf("a failed fetch must be retried: %q, %v", got, err)
	}
}

// A key pasted with a trailing newline (the console, echo > file) must not
// become a header no HTTP client will send; blank means not set, as the
// configuration reads it.
func TestSurroundingWhitespaceIsNotPartOfTheKey(t *testing.T) {
	ctx := context.Background()
	got, err := NewKeys(env(nil), &fakeSM{value: `{"POLYGON_API_KEY":" pk-123\n"}`}, "arn").Get(ctx, deploy.SecretKeyPolygon)
	if err != nil || got != "pk-123" {
		t.Fatalf("from the secret: %q, %v", got, err)
	}
	got, err = NewKeys(env(map[string]string{deploy.SecretKeyPolygon: "pk-env\r\n"}), nil, "").Get(ctx, deploy.SecretKeyPolygon)
	if err != nil || got != "pk-env" {
		t.Fatalf("from the environment: %q, %v", got, err)
	}
	got, err = NewKeys(env(map[string]string{deploy.SecretKeyPolygon: "  "}), &fakeSM{value: `{"POLYGON_API_KEY":"pk-secret"}`}, "arn").Get(ctx, deploy.SecretKeyPolygon)
	if err != nil || got != "pk-secret" {
		t.Fatalf("a blank environment value must not hide the secret: %q, %v", got, err)
	}
	if _, err := NewKeys(env(nil), &fakeSM{value: `{"POLYGON_API_KEY":" \n"}`}, "arn").Get(ctx, deploy.SecretKeyPolygon); !errors.Is(err, ErrNotSet) {
		t.Fatalf("blank value in the secret: %v", err)
	}
}

// A key rotated while the execution environment was warm: Get keeps the
// cached one until Refresh reads the secret again; a failed refresh keeps
// the cache.
func TestRefreshRereadsTheSecret(t *testing.T) {
	ctx := context.Background()
	sm := &fakeSM{value: `{"POLYGON_API_KEY":"old-key"}`}
	k := NewKeys(env(nil), sm, "arn")
	if v, err := k.Get(ctx, deploy.SecretKeyPolygon); err != nil || v != "old-key" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	sm.value = `{"POLYGON_API_KEY":"new-key"}`
	if v, _ := k.Get(ctx, deploy.SecretKeyPolygon); v != "old-key" {
		t.Fatalf("Get before Refresh = %q, want the cached key", v)
	}
	if err := k.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if v, _ := k.Get(ctx, deploy.SecretKeyPolygon); v != "new-key" || sm.calls != 2 {
		t.Fatalf("Get after Refresh = %q (%d reads), want the new key after 2 reads", v, sm.calls)
	}
	sm.value = `not json`
	if err := k.Refresh(ctx); err == nil || strings.Contains(err.Error(), "not json") {
		t.Fatalf("Refresh of a malformed secret: %v", err)
	}
	if v, _ := k.Get(ctx, deploy.SecretKeyPolygon); v != "new-key" {
		t.Fatalf("a failed Refresh dropped the cache: %q", v)
	}
	if err := NewKeys(env(map[string]string{"POLYGON_API_KEY": "k"}), nil, "").Refresh(ctx); err != nil {
		t.Fatalf("Refresh without a secret: %v", err)
	}
}
