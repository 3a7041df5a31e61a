package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambdadestinations"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambdaeventsources"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/zsmseven/backend/pkg/deploy"
)

// Asynchronous invocations (the schedules) are retried at most this often and
// dropped to the on-failure destination after this age, instead of Lambda's
// defaults (2 retries over up to 6 hours).
const (
	asyncRetryAttempts = 2
	asyncMaxEventAgeH  = 1
)

// function is one Lambda function with its own role and log group.
type function struct {
	// Spec is the function of the deployment contract (name, directory,
	// timeout, memory).
	deploy.Function
	Fn       awslambda.Function
	Role     awsiam.Role
	LogGroup awslogs.LogGroup
}

// functions are the three functions of the service.
type functions struct {
	processTickers   *function
	processTicker    *function
	analyzePortfolio *function
}

func (f *functions) all() []*function {
	return []*function{f.processTickers, f.processTicker, f.analyzePortfolio}
}

// checkAssets fails early, with the fix, when `make build` has not run.
func checkAssets(cfg Config) error {
	for _, f := range deploy.Functions {
		p := filepath.Join(cfg.AssetsDir, f.Dir, "bootstrap")
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("function asset %s is missing (run `make build` first): %w", p, err)
		}
	}
	return nil
}

// fnSpec describes one function to build: the contract's function and the
// values of what the stack creates that its variables name (environment).
type fnSpec struct {
	fn deploy.Function
	// resources are the values of the function's FromStack variables: the
	// names and addresses of what this stack creates.
	resources map[string]string
	// async, when set, is where failed asynchronous invocations go.
	async awslambda.IDestination
	// recursiveLoop is Lambda's recursive loop detection setting, required
	// for every function so that none depends on the service default.
	recursiveLoop awslambda.RecursiveLoop
}

func newFunctions(scope constructs.Construct, cfg Config, store *storage, q *tickerQueue, aq *analysisQueue, keys awssecretsmanager.Secret, failures *failureQueues) *functions {
	onFailure := awslambdadestinations.NewSqsDestination(failures.asyncInvocations)
	// What the functions' FromStack variables name. processTicker re-queues
	// a record that fails transiently to the ticker queue's tail, or after
	// its last attempt dead-letters it itself
	// (docs/decisions/0001-queue-concurrency.md).
	resources := map[string]string{
		deploy.EnvStage:                     cfg.Stage,
		deploy.EnvUserPortfoliosTable:       *store.userPortfolios.TableName(),
		deploy.EnvPortfolioPositionsTable:   *store.portfolioPositions.TableName(),
		deploy.EnvTickerDataTable:           *store.tickerData.TableName(),
		deploy.EnvDailyBarsTable:            *store.dailyBars.TableName(),
		deploy.EnvPortfolioAnalysesTable:    *store.analyses.TableName(),
		deploy.EnvAnalysisReservationsTable: *store.reservations.TableName(),
		deploy.EnvTickerQueueURL:            *q.queue.QueueUrl(),
		deploy.EnvTickerDLQURL:              *q.dlq.QueueUrl(),
		deploy.EnvAnalysisQueueURL:          *aq.queue.QueueUrl(),
		deploy.EnvAPIKeysSecretARN:          *keys.SecretArn(),
	}

	processTickers := newFunction(scope, cfg, fnSpec{
		fn:        deploy.ProcessTickers,
		resources: resources,
		async:     onFailure,
		// It sends to the ticker queue, which triggers processTicker, not itself.
		recursiveLoop: awslambda.RecursiveLoop_TERMINATE,
	})
	allowTable(processTickers.Role, store.userPortfolios, sharedReadActions...)
	allowTable(processTickers.Role, store.portfolioPositions, sharedReadActions...)
	allowTable(processTickers.Role, store.dailyBars, "dynamodb:GetItem")
	allowTable(processTickers.Role, store.tickerData, "dynamodb:BatchGetItem")
	allow(processTickers.Role, []string{"sqs:SendMessage"}, *q.queue.QueueArn())

	processTicker := newFunction(scope, cfg, fnSpec{
		fn:        deploy.ProcessTicker,
		resources: resources,
		// processTicker sends to the queue that triggers it: a record that
		// failed transiently goes back to the tail with attempt+1, and a day
		// message queues the fill of the sessions its window lacks (fill
		// messages, then its tickers again). The first loop is bounded by the
		// attempt count (pipeline.DefaultMaxAttempts, 5: then the record goes
		// to the DLQ), about a third of the 16 hops after which Lambda's
		// detection stops a chain; the second is one hop (a fill message and a
		// ticker message queue nothing). TERMINATE is kept, explicitly, as the
		// backstop for a loop that is not bounded (a bug that drops the count,
		// or queues from a fill): Lambda then stops invoking with that
		// message, SQS moves it to the DLQ after maxReceiveCount receives, and
		// the DLQ alarm fires. ALLOW would let such a bug spend without limit.
		recursiveLoop: awslambda.RecursiveLoop_TERMINATE,
	})
	// GetItem: whether the row of the day is stored (a redelivery costs no
	// market-data call).
	allowTable(processTicker.Role, store.tickerData, "dynamodb:GetItem", "dynamodb:PutItem")
	allowTable(processTicker.Role, store.dailyBars, dailyBarsActions...)
	allow(processTicker.Role, []string{"secretsmanager:GetSecretValue"}, *keys.SecretArn())
	allow(processTicker.Role, []string{"sqs:SendMessage"}, *q.queue.QueueArn(), *q.dlq.QueueArn())
	// Records handed back unstarted are made visible again at once
	// (sqsqueue.Visibility); the event source grants the same action for its
	// own use, this statement is the adapter's.
	allow(processTicker.Role, []string{"sqs:ChangeMessageVisibility"}, *q.queue.QueueArn())
	// The event source grants the consume actions on the queue.
	processTicker.Fn.AddEventSource(awslambdaeventsources.NewSqsEventSource(q.queue, &awslambdaeventsources.SqsEventSourceProps{
		BatchSize:               jsii.Number(tickerBatchSize),
		ReportBatchItemFailures: jsii.Bool(true),
		MaxConcurrency:          jsii.Number(tickerEventSourceMaxConcurrency),
	}))

	analyzePortfolio := newFunction(scope, cfg, fnSpec{
		fn:        deploy.AnalyzePortfolio,
		resources: resources,
		async:     onFailure,
		// Invoked by its schedule, which fans out onto the analysis queue, and
		// by that queue, whose invocations never send to it: a chain that
		// came back to the queue would be a loop, and Lambda stops it.
		recursiveLoop: awslambda.RecursiveLoop_TERMINATE,
	})
	allowTable(analyzePortfolio.Role, store.userPortfolios, sharedReadActions...)
	allowTable(analyzePortfolio.Role, store.portfolioPositions, sharedReadActions...)
	allowTable(analyzePortfolio.Role, store.tickerData, "dynamodb:Query")
	allowTable(analyzePortfolio.Role, store.analyses, "dynamodb:Query", "dynamodb:PutItem")
	allowTable(analyzePortfolio.Role, store.reservations, reservationActions...)
	allow(analyzePortfolio.Role, []string{"secretsmanager:GetSecretValue"}, *keys.SecretArn())
	// Consumer of the analysis queue, and its fan-out's sender.
	aq.attach(analyzePortfolio, cfg.AnalysisConcurrency)

	return &functions{processTickers: processTickers, processTicker: processTicker, analyzePortfolio: analyzePortfolio}
}

// newFunction builds a function with its own role (no managed policy) and its
// own log group, which the role may write and nothing else until the caller
// adds the function's data permissions.
func newFunction(scope constructs.Construct, cfg Config, s fnSpec) *function {
	if s.recursiveLoop == "" {
		panic("function " + s.fn.Name + ": set recursiveLoop explicitly")
	}
	stage := cfg.Stage
	id := upperFirst(s.fn.Name)
	logGroup := awslogs.NewLogGroup(scope, jsii.String(id+"Logs"), &awslogs.LogGroupProps{
		LogGroupName:  jsii.String(s.fn.LogGroupName(stage)),
		Retention:     logRetention(stage),
		RemovalPolicy: removalPolicy(stage),
	})
	role := awsiam.NewRole(scope, jsii.String(id+"Role"), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
		Description: jsii.String("Execution role of " + s.fn.FunctionName(stage)),
	})
	// Only the function's own log group: streams are created by Lambda.
	allow(role, []string{"logs:CreateLogStream", "logs:PutLogEvents"}, *logGroup.LogGroupArn())

	env := map[string]*string{}
	for k, v := range environment(cfg, s.fn, s.resources) {
		env[k] = jsii.String(v)
	}
	props := &awslambda.FunctionProps{
		FunctionName:          jsii.String(s.fn.FunctionName(stage)),
		Description:           jsii.String(s.fn.Description),
		Runtime:               awslambda.Runtime_PROVIDED_AL2023(),
		Architecture:          awslambda.Architecture_ARM_64(),
		Handler:               jsii.String("bootstrap"),
		Code:                  awslambda.Code_FromAsset(jsii.String(filepath.Join(cfg.AssetsDir, s.fn.Dir)), nil),
		MemorySize:            jsii.Number(s.fn.MemoryMB),
		Timeout:               awscdk.Duration_Seconds(jsii.Number(s.fn.Timeout.Seconds())),
		Role:                  role,
		LogGroup:              logGroup,
		LoggingFormat:         awslambda.LoggingFormat_JSON,
		ApplicationLogLevelV2: awslambda.ApplicationLogLevel_INFO,
		SystemLogLevelV2:      awslambda.SystemLogLevel_INFO,
		Environment:           &env,
		RecursiveLoop:         s.recursiveLoop,
	}
	if s.async != nil {
		props.OnFailure = s.async
		props.RetryAttempts = jsii.Number(asyncRetryAttempts)
		props.MaxEventAge = awscdk.Duration_Hours(jsii.Number(asyncMaxEventAgeH))
	}
	fn := awslambda.NewFunction(scope, jsii.String(id), props)
	return &function{Function: s.fn, Fn: fn, Role: role, LogGroup: logGroup}
}

// environment is a function's environment, built from the contract: each
// variable it reads, valued from what the stack creates (FromStack), or by
// its setting (the stage's context where one chooses it, else the
// contract's default; a setting without a default is left to the function);
// a HostOnly variable (an API key) is never set: the key is in the secret.
// analyzePortfolio gets the variables of its model provider only.
func environment(cfg Config, fn deploy.Function, resources map[string]string) map[string]string {
	settings := cfg.settings()
	skip := map[string]bool{}
	for _, p := range deploy.ModelProviders {
		if p.Name != cfg.ModelProvider {
			for _, v := range p.Vars() {
				skip[v.Name] = true
			}
		}
	}
	env := map[string]string{}
	for _, v := range fn.Vars() {
		if skip[v.Name] {
			continue
		}
		switch v.Origin {
		case deploy.FromStack:
			val, ok := resources[v.Name]
			if !ok {
				panic(fmt.Sprintf("function %s reads %s, which the stack does not provide", fn.Name, v.Name))
			}
			env[v.Name] = val
		case deploy.Setting:
			if val, ok := settings[v.Name]; ok {
				env[v.Name] = val
			} else if v.Default != "" {
				env[v.Name] = v.Default
			}
		}
	}
	return env
}

// logRetention keeps a month of logs in dev and three months in prod.
func logRetention(stage string) awslogs.RetentionDays {
	if isProd(stage) {
		return awslogs.RetentionDays_THREE_MONTHS
	}
	return awslogs.RetentionDays_ONE_MONTH
}

// allow adds one explicit statement to a role's policy.
func allow(role awsiam.IRole, actions []string, resources ...string) {
	role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Effect:    awsiam.Effect_ALLOW,
		Actions:   jsii.Strings(actions...),
		Resources: jsii.Strings(resources...),
	}))
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}
