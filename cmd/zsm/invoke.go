package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/zsmseven/backend/internal/devstack"
	"github.com/zsmseven/backend/pkg/app/analyzeportfolio"
	"github.com/zsmseven/backend/pkg/app/processticker"
	"github.com/zsmseven/backend/pkg/app/processtickers"
	"github.com/zsmseven/backend/pkg/config"
	"github.com/zsmseven/backend/pkg/deploy"
)

const invokeSynopsis = "zsm invoke FUNCTION --event JSON|@FILE [--stage dev|prod | --data DIR | --memory]"

const invokeDescription = `Runs one function's handler in this process — the same constructor the
Lambda's main.go calls — with the given event, and prints its response JSON.
FUNCTION is processTickers, processTicker or analyzePortfolio.

With --stage it runs against the deployed stage's real resources: its tables,
its queue (looked up by name), and its API-key secret zsm-seven/<stage>/api-keys,
with the default AWS credential chain (AWS_PROFILE, SSO, ...). POLYGON_API_KEY
and XAI_API_KEY in your environment take precedence over the secret.
Without --stage it runs against the local stack of ` + "`zsm run`" + ` (dynalite
under .local/dynalite, the sample portfolio, the sandbox prices unless
POLYGON_API_KEY is set); messages processTickers queues there are dropped at
exit — use ` + "`zsm run`" + ` for the whole pipeline.

The function's JSON logs go to stderr; the response to stdout. The invocation
gets the deployed function's timeout as its deadline.

analyzePortfolio takes {"portfolio_name":"NAME"} (analyzed in this invocation),
{"portfolio_name":"*"} or {"portfolio_names":[...]} (fanned out: one message per
portfolio on the analysis queue), or an SQS event of that queue.

examples:
  zsm invoke analyzePortfolio --event '{"portfolio_name":"ZSM Seven"}'
  zsm invoke analyzePortfolio --event '{"portfolio_name":"*"}' --stage dev
  zsm invoke processTicker --event @event.json --stage dev`

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
		env, err := stageEnv(ctx, *stage, fn)
		if err != nil {
			return fmt.Errorf("invoke: %w", err)
		}
		lookup = overlay(env, os.LookupEnv)
		fmt.Fprintf(stderr, "zsm invoke: %s against stage %s (tables *-%s, secret %s)\n", fn.Name, *stage, *stage, env[deploy.EnvAPIKeysSecretARN])
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
			h, err = processTickerHandler(ctx, stack, logs, nil)
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

// stageEnv is the environment the stack gives the function in a deployed
// stage, built from the naming conventions shared with infra/.
func stageEnv(ctx context.Context, stage string, fn deploy.Function) (map[string]string, error) {
	env := deploy.TableEnv(stage)
	// GetSecretValue takes the name as well as the ARN.
	env[deploy.EnvAPIKeysSecretARN] = deploy.SecretName(stage)
	// The queue URLs carry the account id: look them up by the stack's names.
	var queues map[string]string
	switch fn {
	case deploy.ProcessTickers:
		queues = map[string]string{deploy.EnvTickerQueueURL: deploy.TickerQueueName(stage)}
	case deploy.ProcessTicker:
		queues = map[string]string{deploy.EnvTickerQueueURL: deploy.TickerQueueName(stage), deploy.EnvTickerDLQURL: deploy.TickerDLQName(stage)}
	case deploy.AnalyzePortfolio:
		// Its fan-out sends to the analysis queue.
		queues = map[string]string{deploy.EnvAnalysisQueueURL: deploy.AnalysisQueueName(stage)}
	}
	if len(queues) > 0 {
		cfg, err := awsconfig.LoadDefaultConfig(ctx)
		if err != nil {
			return nil, fmt.Errorf("AWS configuration: %w", err)
		}
		client := sqs.NewFromConfig(cfg)
		for key, name := range queues {
			out, err := client.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
			if err != nil {
				return nil, fmt.Errorf("look up queue %s: %w", name, err)
			}
			env[key] = aws.ToString(out.QueueUrl)
		}
	}
	return env, nil
}

// overlay looks keys up in env first, then in the fallback (the caller's
// environment: LOG_LEVEL, key overrides, POLYGON_* and XAI_* settings).
func overlay(env map[string]string, fallback config.Lookup) config.Lookup {
	return func(k string) (string, bool) {
		if v, ok := env[k]; ok {
			return v, true
		}
		return fallback(k)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
