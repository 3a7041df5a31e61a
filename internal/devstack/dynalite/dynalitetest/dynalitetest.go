// Package dynalitetest starts one dynalite server per test binary and gives
// each test its own set of freshly created tables, so tests run against the
// real DynamoDB API without sharing state.
package dynalitetest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/zsmseven/backend/internal/devstack/dynalite"
	"github.com/zsmseven/backend/pkg/deploy"
)

var (
	once   sync.Once
	server *dynalite.Server
	errRun error
	seq    atomic.Int64
)

// Env is one test's view of the shared dynalite server.
type Env struct {
	Endpoint string
	Client   *dynamodb.Client
	// Stage is unique to the test; table names are spec.Name(Stage).
	Stage string
}

// Server returns the dynalite server shared by the test binary, starting it on
// first use. Call Stop from TestMain after m.Run to end the process.
func Server(t testing.TB) *dynalite.Server {
	t.Helper()
	once.Do(func() { server, errRun = dynalite.Start(context.Background(), dynalite.Options{}) })
	if errRun != nil {
		t.Fatalf("dynalite: %v", errRun)
	}
	return server
}

// Stop ends the shared server if one was started.
func Stop() { server.Stop() }

// Main is a TestMain for packages that use dynalite: it runs the tests and
// stops the shared server afterwards.
func Main(m *testing.M) { code := m.Run(); Stop(); os.Exit(code) }

// New creates every table of the service under a stage unique to this test
// and returns the environment.
func New(t testing.TB, specs ...deploy.Table) *Env {
	t.Helper()
	s := Server(t)
	c := dynalite.Client(s.Endpoint)
	name := strings.NewReplacer("/", "-", " ", "-", "#", "-", "=", "-").Replace(strings.ToLower(t.Name()))
	if len(name) > 40 {
		name = name[:40]
	}
	stage := fmt.Sprintf("t%d-%s", seq.Add(1), name)
	if err := dynalite.CreateTables(context.Background(), c, stage, specs...); err != nil {
		t.Fatalf("create tables: %v", err)
	}
	return &Env{Endpoint: s.Endpoint, Client: c, Stage: stage}
}
