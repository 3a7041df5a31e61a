package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	awslambda "github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/zsmseven/backend/internal/devstack"
	"github.com/zsmseven/backend/pkg/app/analyzeportfolio"
	"github.com/zsmseven/backend/pkg/app/processticker"
	"github.com/zsmseven/backend/pkg/app/processtickers"
	"github.com/zsmseven/backend/pkg/config"
	"github.com/zsmseven/backend/pkg/deploy"
)

const invokeSynopsis = "zsm invoke FUNCTION --event JSON|@FILE [--stage dev|prod | --data DIR | --memory]"

var invokeDescription = contractWords.Replace(`Runs one function's handler in this process — the same constructor the
Lambda's main.go calls — with the given event, and prints its response JSON.
FUNCTION is processTickers, processTicker or analyzePortfolio.

With --stage it runs against the deployed stage's real resources, with the
function's environment as deployed (read with GetFunctionConfiguration: its
tables, queues, API-key secret and settings), and the default AWS credential
chain (AWS_PROFILE, SSO, ...). The contract's settings and keys set in your
environment ({polygon-key}, {xai-key}, a log level, ...) take precedence, and
the command says which.
Without --stage it runs against the local stack of ` + "`zsm run`" + ` (dynalite
under .local/dynalite, the sample portfolio, the sandbox prices unless
{polygon-key} is set); messages processTickers queues there are dropped at
exit — use ` + "`zsm run`" + ` for the whole pipeline.

The function's JSON logs go to stderr; the response to stdout. The invocation
gets the deployed function's timeout as its deadline.

analyzePortfolio takes {"portfolio_name":"NAME"} (analyzed in this invocation),
{"portfolio_name":"*"} or {"portfolio_names":[...]} (fanned out: one message per
portfolio on the analysis queue), or an SQS event of that queue.

examples:
  zsm invoke analyzePortfolio --event '{"portfolio_name":"ZSM Seven"}'
  zsm invoke analyzePortfolio --event '{"portfolio_name":"*"}' --stage dev
  zsm invoke processTicker --event @event.json --stage dev`)

// runInvoke implements `zsm invoke`.
func runInvoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newCmdFlags("invoke", invokeSynopsis, invokeDescription, stdout)
	event := fs.String("event", "", "the event: JSON, or @FILE to read it from a file (@- for stdin)")
	stage := fs.String("stage", "", "run against a deployed stage (dev or prod)")
	data := fs.String("data", devstack.DefaultDataDir, "local store (without --stage)")
	memory := fs.Bool("memory", false, "use an empty in-memory local store (without --stage)")
	// The function name may come before or after the flags.
	var fnName string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		fnName, args = args[0], args[1:]
	}
	if err := fs.parse(args); err != nil {
		return err
	}
	rest := fs.Args()
	if fnName == "" && len(rest) > 0 {
		fnName, rest = rest[0], rest[1:]
	}
	if len(rest) > 0 {
		return usagef("invoke: unexpected argument %.40q", rest[0])
	}
	if fnName == "" {
		return usagef("invoke: FUNCTION is required (processTickers, processTicker or analyzePortfolio)")
	}
	fn, ok := deploy.FunctionByName(fnName)
	if !ok {
		return usagef("invoke: unknown function %.40q: use processTickers, processTicker or analyzePortfolio", fnName)
	}
	if *event == "" {
		return usagef("invoke: --event is required (see zsm invoke --help)")
	}
	payload, err := readEvent(*event, os.Stdin)
	if err != nil {
		return usagef("invoke: %v", err)
	}

	var lookup config.Lookup
	var stack *devstack.Stack
	if *stage != "" {
		if err := deploy.ValidateDeployStage(*stage); err != nil {
			return usagef("invoke: %v", err)
		}
		awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
		if err != nil {
			return fmt.Errorf("invoke: AWS configuration: %w", err)
		}
		deployed, err := stageEnv(ctx, awslambda.NewFromConfig(awsCfg), *stage, fn)
		if err != nil {
			return fmt.Errorf("invoke: %w", err)
		}
		env, overridden := overlayStage(deployed, os.LookupEnv)
		lookup = func(k string) (string, bool) { v, ok := env[k]; return v, ok }
		fmt.Fprintf(stderr, "zsm invoke: %s against stage %s, with the environment of %s as deployed (secret %s)\n",
			fn.Name, *stage, fn.FunctionName(*stage), env[deploy.EnvAPIKeysSecretARN])
		if len(overridden) > 0 {
			fmt.Fprintf(stderr, "zsm invoke: from your environment: %s\n", strings.Join(overridden, ", "))
		}
	} else {
		dir := *data
		if *memory {
			dir = ""
		}
		st, err := devstack.Start(ctx, devstack.Options{DataDir: dir, Host: os.LookupEnv})
		if err != nil {
			if ctx.Err() != nil {
				return interrupted(stderr, "invoke")
			}
			return fmt.Errorf("invoke: %w", err)
		}
		defer st.Stop()
		restore := st.ApplyProcessEnv()
		defer restore()
		lookup, stack = st.Lookup, st
		where := "in memory"
		if dir != "" {
			where = "under " + dir
		}
		fmt.Fprintf(stderr, "zsm invoke: %s against the local stack (dynalite %s)\n", fn.Name, where)
	}

	resp, err := invokeHandler(ctx, fn, lookup, stack, payload, stderr)
	if err != nil {
		if ctx.Err() != nil {
			return interrupted(stderr, "invoke")
		}
		return fmt.Errorf("invoke %s: %w", fn.Name, err)
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, resp, "", "  ") != nil {
		pretty.Reset()
		pretty.Write(resp)
	}
	fmt.Fprintln(stdout, pretty.String())
	if ctx.Err() != nil {
		// The handler answered (e.g. processTicker handing its records back),
		// but it was cut short: not a success.
		return interrupted(stderr, "invoke")
	}
	return nil
}

// interrupted reports a command stopped by Ctrl-C or SIGTERM: exit status 130.
func interrupted(stderr io.Writer, cmd string) error {
	fmt.Fprintf(stderr, "zsm: %s interrupted; everything it started is stopped\n", cmd)
	return exitCode(130)
}

// invokeHandler builds the function's handler with its constructor and
// invokes it through aws-lambda-go, as the Lambda runtime does: the payload
// is decoded into the handler's event type and the response encoded.
func invokeHandler(ctx context.Context, fn deploy.Function, lookup config.Lookup, stack *devstack.Stack, payload []byte, logs io.Writer) ([]byte, error) {
	var h any
	var err error
	switch fn {
	case deploy.ProcessTickers:
		h, err = processtickers.New(ctx, lookup, logs)
	case deploy.ProcessTicker:
		if stack != nil {
			h, err = processTickerHandler(ctx, stack, logs, nil, nil)
		} else {
			h, err = processticker.New(ctx, lookup, logs)
		}
	case deploy.AnalyzePortfolio:
		var f *analyzeportfolio.Function
		if f, err = analyzeportfolio.New(ctx, lookup, logs); err == nil {
			h = f.Invoke
		}
	default:
		return nil, fmt.Errorf("no constructor for %s", fn.Name)
	}
	if err != nil {
		return nil, err
	}
	ctx, cancel := invocationContext(ctx, fn)
	defer cancel()
	return lambda.NewHandler(h).Invoke(ctx, payload)
}

// readEvent returns the event JSON from the flag: inline JSON, @FILE or @-.
func readEvent(v string, stdin io.Reader) ([]byte, error) {
	var b []byte
	var err error
	switch {
	case v == "@-":
		b, err = io.ReadAll(io.LimitReader(stdin, 6<<20))
	case strings.HasPrefix(v, "@"):
		b, err = os.ReadFile(v[1:])
	default:
		b = []byte(v)
	}
	if err != nil {
		return nil, fmt.Errorf("read event: %w", err)
	}
	if !json.Valid(b) {
		return nil, fmt.Errorf("the event is not valid JSON")
	}
	return b, nil
}

// functionConfiguration reads a deployed function's configuration
// (lambda.Client in production).
type functionConfiguration interface {
	GetFunctionConfiguration(ctx context.Context, in *awslambda.GetFunctionConfigurationInput, opts ...func(*awslambda.Options)) (*awslambda.GetFunctionConfigurationOutput, error)
}

// stageEnv is the environment of the function as deployed in the stage,
// read from its configuration (GetFunctionConfiguration): every variable the
// stack set, settings such as the stage's pacing included.
func stageEnv(ctx context.Context, client functionConfiguration, stage string, fn deploy.Function) (map[string]string, error) {
	name := fn.FunctionName(stage)
	out, err := client.GetFunctionConfiguration(ctx, &awslambda.GetFunctionConfigurationInput{FunctionName: aws.String(name)})
	if err != nil {
		return nil, fmt.Errorf("read the configuration of %s: %w", name, err)
	}
	if out.Environment == nil || len(out.Environment.Variables) == 0 {
		if out.Environment != nil && out.Environment.Error != nil {
			return nil, fmt.Errorf("the environment of %s cannot be read: %s", name, aws.ToString(out.Environment.Error.Message))
		}
		return nil, fmt.Errorf("%s has no environment: is it deployed by this stack?", name)
	}
	return out.Environment.Variables, nil
}

// overlayStage is the deployed environment with the caller's own values of
// the contract's settings and keys on top (a key locally, a log level for
// one run); what the stack derives from its resources (tables, queues, the
// secret) is always the deployed value. It returns the names the caller
// overrode.
func overlayStage(deployed map[string]string, host config.Lookup) (map[string]string, []string) {
	env := maps.Clone(deployed)
	var overridden []string
	for _, v := range deploy.Vars() {
		if v.Origin == deploy.FromStack {
			continue
		}
		if val, ok := host(v.Name); ok && val != "" {
			if env[v.Name] != val {
				overridden = append(overridden, v.Name)
			}
			env[v.Name] = val
		}
	}
	slices.Sort(overridden)
	return env, overridden
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
