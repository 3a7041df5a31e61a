package deploy

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestFunctionAndSecretNames(t *testing.T) {
	for got, want := range map[string]string{
		ProcessTicker.FunctionName("dev"):     "zsm-processTicker-dev",
		AnalyzePortfolio.LogGroupName("prod"): "/aws/lambda/zsm-analyzePortfolio-prod",
		SecretName("prod"):                    "zsm-seven/prod/api-keys",
		StackName("dev"):                      "ZsmSevenBackend-dev",
	} {
		if got != want {
			t.Errorf("name %q, want %q", got, want)
		}
	}
	if f, ok := FunctionByName("PROCESSTICKERS"); !ok || f != ProcessTickers {
		t.Errorf("FunctionByName: %+v %v", f, ok)
	}
	if _, ok := FunctionByName("processTickerz"); ok {
		t.Error("an unknown function was found")
	}
}

// The Makefile builds and tails the functions by their directories and
// names: its lists must be this package's.
func TestMakefileListsTheFunctions(t *testing.T) {
	b, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^FUNCTIONS\s*:=\s*(.+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("Makefile has no FUNCTIONS := line")
	}
	var dirs []string
	for _, f := range Functions {
		dirs = append(dirs, f.Dir)
	}
	if got := strings.Fields(string(m[1])); !slices.Equal(got, dirs) {
		t.Errorf("Makefile FUNCTIONS = %v, want %v (package deploy)", got, dirs)
	}
	for _, f := range Functions {
		if !strings.Contains(string(b), f.Name+"|"+f.Dir+")") {
			t.Errorf("Makefile's logs target does not accept %s|%s", f.Name, f.Dir)
		}
	}
}

func TestValidateDeployStage(t *testing.T) {
	for _, ok := range []string{"dev", "prod"} {
		if err := ValidateDeployStage(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "local", "Prod", "staging"} {
		if err := ValidateDeployStage(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestQueueNames(t *testing.T) {
	if got := TickerQueueName("prod"); got != "ticker-processing-queue-prod.fifo" {
		t.Errorf("queue %q", got)
	}
	if got := TickerDLQName("dev"); got != "ticker-processing-dlq-dev.fifo" {
		t.Errorf("DLQ %q", got)
	}
	// The analysis queue is a standard queue: no .fifo suffix.
	if got := AnalysisQueueName("prod"); got != "portfolio-analysis-queue-prod" {
		t.Errorf("analysis queue %q", got)
	}
	if got := AnalysisDLQName("dev"); got != "portfolio-analysis-dlq-dev" {
		t.Errorf("analysis DLQ %q", got)
	}
	// AWS: visibility at least 6 × the consumer's timeout, maxReceiveCount at least 5.
	if AnalysisVisibilityFactor < 6 || AnalysisMaxReceiveCount < 5 || DefaultAnalysisConcurrency < 2 || DefaultAnalysisConcurrency > 1000 {
		t.Errorf("analysis queue sizing %d %d %d", AnalysisVisibilityFactor, AnalysisMaxReceiveCount, DefaultAnalysisConcurrency)
	}
}
