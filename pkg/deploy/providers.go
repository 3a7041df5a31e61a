package deploy

// ModelProvider is a provider of the analysis model: an OpenAI-compatible
// chat-completions API behind the analyzer's model port. Adding one is an
// adapter package beside pkg/xai, its constructor in pkg/app/analyzeportfolio
// (Models), and an entry here: its variables and the name of its key. A
// stage chooses it with the CDK context modelProvider, which the stack hands
// to the function as MODEL_PROVIDER.
type ModelProvider struct {
	// Name is MODEL_PROVIDER's value and the context's, e.g. "xai".
	Name string
	// Label names it for people, e.g. "xAI".
	Label string
	// KeyName is the name of its API key in the stage's secret and, locally,
	// of the environment variable that takes precedence over the secret.
	KeyName string
	// Its variables: the endpoint, the requested model, the ceiling of a
	// call's completion cap, the reasoning effort and one attempt's bound.
	URL, Model, MaxCompletionTokens, ReasoningEffort, AttemptTimeout Var
}

// Vars are the provider's variables, its key included.
func (p ModelProvider) Vars() []Var {
	return []Var{p.URL, p.Model, p.MaxCompletionTokens, p.ReasoningEffort, p.AttemptTimeout, p.Key()}
}

// Key is the variable of its key (locally only: on AWS it is in the secret).
func (p ModelProvider) Key() Var {
	return Var{Name: p.KeyName, Kind: KindString, Origin: HostOnly, Doc: "the " + p.Label + " key, locally (it takes precedence over the secret)"}
}

// XAI is xAI's Grok.
var XAI = ModelProvider{
	Name: "xai", Label: "xAI", KeyName: EnvXAIAPIKey,
	URL: VarXAIAPIURL, Model: VarXAIModel, MaxCompletionTokens: VarXAIMaxCompletionTokens,
	ReasoningEffort: VarXAIReasoningEffort, AttemptTimeout: VarXAIAttemptTimeout,
}

// ModelProviders lists the providers a stage can choose.
var ModelProviders = []ModelProvider{XAI}

// ModelProviderByName finds a provider.
func ModelProviderByName(name string) (ModelProvider, bool) {
	for _, p := range ModelProviders {
		if p.Name == name {
			return p, true
		}
	}
	return ModelProvider{}, false
}

func modelProviderNames() []string {
	names := make([]string, 0, len(ModelProviders))
	for _, p := range ModelProviders {
		names = append(names, p.Name)
	}
	return names
}
