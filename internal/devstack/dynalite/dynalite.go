// Package dynalite runs dynalite, a local server of the real DynamoDB API
// (npm, pinned in package-lock.json), and creates the service's tables on it
// from the shared specs of package tables. Tests and `zsm run` use it; nothing
// deployed does.
package dynalite

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zsmseven/backend/internal/devstack/procgroup"
	"github.com/zsmseven/backend/pkg/deploy"
)

// Server is a running dynalite process.
type Server struct {
	// Endpoint is the base URL, e.g. http://127.0.0.1:41234.
	Endpoint string
	// Path is the data directory, or "" when data is held in memory.
	Path string
	cmd  *exec.Cmd
	done chan error
}

// Options configure Start.
type Options struct {
	// Path keeps data on disk under this directory; empty means in memory.
	Path string
	// Port to listen on; 0 picks a free one.
	Port int
	// Stderr receives dynalite's own output (nil discards it).
	Stderr *os.File
}

// Bin finds the dynalite executable: $DYNALITE_BIN, or node_modules/.bin/dynalite
// in the working directory or one of its parents (the repository root, where
// `npm ci` installs it).
func Bin() (string, error) {
	if p := os.Getenv("DYNALITE_BIN"); p != "" {
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find dynalite: %w", err)
	}
	for {
		p := filepath.Join(dir, "node_modules", ".bin", "dynalite")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("dynalite not found: run `npm ci` in the repository root (make does this for you)")
		}
		dir = parent
	}
}

// Start launches dynalite and waits until it answers. The process is placed in
// its own process group and stopped by Stop.
func Start(ctx context.Context, opts Options) (*Server, error) {
	bin, err := Bin()
	if err != nil {
		return nil, err
	}
	port := opts.Port
	if port == 0 {
		if port, err = freePort(); err != nil {
			return nil, err
		}
	}
	// Tables become ACTIVE at once instead of after dynalite's default 500 ms:
	// every test and local run creates four of them.
	args := []string{"--port", strconv.Itoa(port), "--host", "127.0.0.1", "--createTableMs", "0", "--deleteTableMs", "0", "--updateTableMs", "0"}
	if opts.Path != "" {
		if err := os.MkdirAll(opts.Path, 0o755); err != nil {
			return nil, fmt.Errorf("dynalite data directory: %w", err)
		}
		args = append(args, "--path", opts.Path)
	}
	cmd := exec.Command(bin, args...)
	procgroup.Prepare(cmd, syscall.SIGTERM)
	if opts.Stderr != nil {
		cmd.Stdout, cmd.Stderr = opts.Stderr, opts.Stderr
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start dynalite: %w", err)
	}
	s := &Server{Endpoint: fmt.Sprintf("http://127.0.0.1:%d", port), Path: opts.Path, cmd: cmd, done: make(chan error, 1)}
	go func() { s.done <- cmd.Wait() }()
	if err := s.waitReady(ctx); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		select {
		case err := <-s.done:
			s.done <- err
			return fmt.Errorf("dynalite exited before it was ready: %v", err)
		case <-ctx.Done():
			return fmt.Errorf("dynalite at %s not ready: %w", s.Endpoint, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
		resp, err := http.Get(s.Endpoint)
		if err == nil {
			resp.Body.Close()
			return nil
		}
	}
}

// Stop ends the dynalite process (and anything it started) and waits for it.
func (s *Server) Stop() {
	if s == nil {
		return
	}
	procgroup.Stop(s.cmd, s.done, 5*time.Second)
}

// Client returns a DynamoDB client for a local endpoint, with static dummy
// credentials (dynalite checks that requests are signed, not by whom).
func Client(endpoint string) *dynamodb.Client {
	return dynamodb.New(dynamodb.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("local", "local", ""),
	})
}

// CreateTables creates the given tables for a stage (all of them when specs is
// empty) and waits until they are active. Tables that exist are left alone,
// so it is safe on a data directory kept between runs.
func CreateTables(ctx context.Context, c *dynamodb.Client, stage string, specs ...deploy.Table) error {
	if len(specs) == 0 {
		specs = deploy.Tables
	}
	for _, spec := range specs {
		name := spec.Name(stage)
		_, err := c.CreateTable(ctx, CreateTableInput(spec, stage))
		var inUse *types.ResourceInUseException
		if err != nil && !errors.As(err, &inUse) {
			return fmt.Errorf("create table %s: %w", name, err)
		}
		w := dynamodb.NewTableExistsWaiter(c, func(o *dynamodb.TableExistsWaiterOptions) {
			o.MinDelay, o.MaxDelay = 50*time.Millisecond, 500*time.Millisecond
		})
		if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)}, 30*time.Second); err != nil {
			return fmt.Errorf("wait for table %s: %w", name, err)
		}
	}
	return nil
}

// CreateTableInput is the CreateTable request for a spec: on-demand billing,
// the spec's keys.
func CreateTableInput(spec deploy.Table, stage string) *dynamodb.CreateTableInput {
	in := &dynamodb.CreateTableInput{
		TableName:   aws.String(spec.Name(stage)),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{
			AttributeName: aws.String(spec.PartitionKey.Name), AttributeType: types.ScalarAttributeType(spec.PartitionKey.Type),
		}},
		KeySchema: []types.KeySchemaElement{{AttributeName: aws.String(spec.PartitionKey.Name), KeyType: types.KeyTypeHash}},
	}
	if spec.SortKey != nil {
		in.AttributeDefinitions = append(in.AttributeDefinitions, types.AttributeDefinition{
			AttributeName: aws.String(spec.SortKey.Name), AttributeType: types.ScalarAttributeType(spec.SortKey.Type),
		})
		in.KeySchema = append(in.KeySchema, types.KeySchemaElement{AttributeName: aws.String(spec.SortKey.Name), KeyType: types.KeyTypeRange})
	}
	return in
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
