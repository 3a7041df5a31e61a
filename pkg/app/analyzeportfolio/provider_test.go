package analyzeportfolio_test

import (
	"bytes"
	"context"
	"slices"
	"testing"

	"github.com/zsmseven/backend/internal/devstack"
	"github.com/zsmseven/backend/internal/devstack/fakexai"
	"github.com/zsmseven/backend/pkg/analyzer"
	"github.com/zsmseven/backend/pkg/app/analyzeportfolio"
	"github.com/zsmseven/backend/pkg/config"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/xai"
)

// A second model provider is an adapter, an entry in the contract and
// nothing else: this test adds both — a provider "double" with its own
// variables and key, and its adapter (an OpenAI-compatible client; here
// xAI's, which speaks that protocol, pointed at a local server) — and
// chooses it the way a stage does, with MODEL_PROVIDER. The local stack
// passes its variables through, the configuration reads them, the wiring
// builds its adapter with its key, and the portfolio is analyzed by it.
func TestASecondProviderIsAnAdapterAndAContractEntry(t *testing.T) {
	double := deploy.ModelProvider{
		Name: "double", Label: "Double", KeyName: "DOUBLE_API_KEY",
		URL:                 deploy.Var{Name: "DOUBLE_API_URL", Kind: deploy.KindURL, Default: "https://double.invalid/v1/chat/completions", Origin: deploy.Setting, Doc: "its endpoint"},
		Model:               deploy.Var{Name: "DOUBLE_MODEL", Kind: deploy.KindString, Default: "double-1", Origin: deploy.Setting, Doc: "its model"},
		MaxCompletionTokens: deploy.Var{Name: "DOUBLE_MAX_COMPLETION_TOKENS", Kind: deploy.KindInt, Default: "8000", Min: "256", Max: "100000", Origin: deploy.Setting, Doc: "its cap"},
		ReasoningEffort:     deploy.Var{Name: "DOUBLE_REASONING_EFFORT", Kind: deploy.KindEnum, Default: "omit", Values: []string{"low", "omit"}, Origin: deploy.Setting, Doc: "its effort"},
		AttemptTimeout:      deploy.Var{Name: "DOUBLE_ATTEMPT_TIMEOUT", Kind: deploy.KindDuration, Default: "30s", Min: "1s", Max: "5m", Origin: deploy.Setting, Doc: "its attempt bound"},
	}
	providers := deploy.ModelProviders
	deploy.ModelProviders = append(slices.Clone(providers), double)
	analyzeportfolio.Models[double.Name] = func(m config.Model, key string, o analyzeportfolio.ModelOptions) analyzer.LLM {
		return xai.New(xai.Options{URL: m.URL, APIKey: key, Model: m.Name, MaxCompletionTokens: m.MaxCompletionTokens,
			Reserve: o.Reserve, Retry: o.Retry, AttemptTimeout: m.AttemptTimeout})
	}
	t.Cleanup(func() {
		deploy.ModelProviders = providers
		delete(analyzeportfolio.Models, double.Name)
	})

	srv := fakexai.New(t, fakexai.Generate(&fakexai.Generator{Model: "double-1-0901"}))
	srv.RequireKey = "double-key"
	host := map[string]string{
		deploy.EnvModelProvider: double.Name,
		"DOUBLE_API_URL":        srv.URL,
		"DOUBLE_API_KEY":        "double-key",
		// xAI's key is set too: the provider's own key is the one sent.
		deploy.EnvXAIAPIKey: "not-this-one",
	}
	ctx := context.Background()
	st, err := devstack.Start(ctx, devstack.Options{Host: func(k string) (string, bool) { v, ok := host[k]; return v, ok }})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Stop()
	defer st.ApplyProcessEnv()()

	var logs bytes.Buffer
	fn, err := analyzeportfolio.New(ctx, st.Lookup, &logs)
	if err != nil {
		t.Fatal(err)
	}
	res, err := fn.Run(ctx, analyzer.Event{PortfolioName: devstack.SamplePortfolio})
	if err != nil {
		t.Fatalf("run: %v\n%s", err, logs.String())
	}
	if len(res.Portfolios) != 1 || res.Portfolios[0].Status != analyzer.OutcomeOK {
		t.Fatalf("outcome %+v, want the model's analysis\n%s", res.Portfolios, logs.String())
	}
	reqs := srv.Requests()
	if len(reqs) == 0 {
		t.Fatal("the provider's server got no request")
	}
	for _, r := range reqs {
		if r.Decoded.Model != "double-1" {
			t.Errorf("requested model %q, want the provider's default double-1", r.Decoded.Model)
		}
		if r.Decoded.ReasoningEffort != nil {
			t.Errorf("reasoning_effort %q sent; the provider's setting is omit", *r.Decoded.ReasoningEffort)
		}
	}
	if srv.Refused() != 0 {
		t.Errorf("%d requests refused", srv.Refused())
	}
}
