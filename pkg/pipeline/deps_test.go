package pipeline_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The use cases speak the domain's words: their ports carry marketdata,
// indicators and coverage types and queue messages, never an adapter's, so
// the package links no AWS service client (read from the build graph).
func TestLinksNoAWSServiceClient(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, d := range strings.Fields(string(out)) {
		if strings.HasPrefix(d, "github.com/aws/aws-sdk-go-v2/service/") {
			t.Errorf("pkg/pipeline links %s", d)
		}
	}
}
