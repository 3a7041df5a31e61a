package app_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/zsmseven/backend/pkg/deploy"
)

// Each bootstrap links the SDK clients its function calls and nothing of the
// development tooling; infra links no SDK service client at all. Read from
// the build graph (`go list -deps`), as the linker sees it.
func TestBootstrapsLinkOnlyWhatTheyCall(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	clients := map[string][]string{
		deploy.ProcessTickers.Dir:   {"dynamodb", "sqs"},
		deploy.ProcessTicker.Dir:    {"dynamodb", "secretsmanager", "sqs"},
		deploy.AnalyzePortfolio.Dir: {"dynamodb", "secretsmanager", "sqs"},
	}
	// The SDK's own credential chain (config) links these; no function
	// calls them.
	credentialChain := []string{"signin", "sso", "ssooidc", "sts"}
	for _, f := range deploy.Functions {
		deps := goListDeps(t, "./lambdas/"+f.Dir)
		var got []string
		for _, d := range deps {
			if svc, ok := strings.CutPrefix(d, "github.com/aws/aws-sdk-go-v2/service/"); ok && !strings.Contains(svc, "/") && !slices.Contains(credentialChain, svc) {
				got = append(got, svc)
			}
			if strings.HasPrefix(d, "github.com/zsmseven/backend/internal/") {
				t.Errorf("%s links development tooling %s", f.Dir, d)
			}
		}
		if !slices.Equal(got, clients[f.Dir]) {
			t.Errorf("%s links the SDK clients %v, want %v", f.Dir, got, clients[f.Dir])
		}
	}
	for _, d := range goListDeps(t, "./infra") {
		if strings.HasPrefix(d, "github.com/aws/aws-sdk-go-v2/service/") || strings.HasPrefix(d, "github.com/zsmseven/backend/internal/") {
			t.Errorf("infra links %s", d)
		}
	}
}

func goListDeps(t *testing.T, pkg string) []string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", pkg)
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

// pkg/ is production code only: no package of it imports development or
// test tooling outside its tests.
func TestProductionCodeImportsNoTooling(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	cmd := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./pkg/...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list ./pkg/...: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		for _, imp := range fields[1:] {
			if strings.HasPrefix(imp, "github.com/zsmseven/backend/internal/") || strings.HasSuffix(imp, "/testing") && imp != "testing" {
				t.Errorf("%s imports %s", fields[0], imp)
			}
		}
	}
}

// The analysis use case speaks the domain: its ports are typed in the
// analysis's words, so it links no AWS service client (the adapters do,
// in the wiring).
func TestTheAnalysisUseCaseLinksNoAWSService(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	for _, d := range goListDeps(t, "./pkg/analyzer") {
		if strings.HasPrefix(d, "github.com/aws/aws-sdk-go-v2/service/") {
			t.Errorf("pkg/analyzer links %s", d)
		}
	}
}
