package main

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/zsmseven/backend/pkg/deploy"
)

// storage holds the tables the stack owns and the shared ones it imports.
type storage struct {
	tickerData awsdynamodb.Table
	dailyBars  awsdynamodb.Table
	analyses   awsdynamodb.Table
	// Shared tables of portfolio-api: imported by name, read-only here.
	userPortfolios     awsdynamodb.ITable
	portfolioPositions awsdynamodb.ITable
}

// isProd reports whether the stage keeps its data when the stack goes away.
func isProd(stage string) bool { return stage == deploy.StageProd }

// removalPolicy is RETAIN for prod data and DESTROY for dev, so a dev stack can
// be torn down completely while prod data survives a mistaken deletion.
func removalPolicy(stage string) awscdk.RemovalPolicy {
	if isProd(stage) {
		return awscdk.RemovalPolicy_RETAIN
	}
	return awscdk.RemovalPolicy_DESTROY
}

func newStorage(scope constructs.Construct, stage string) *storage {
	return &storage{
		tickerData: newOwnedTable(scope, "TickerData", deploy.TickerData, stage),
		dailyBars:  newOwnedTable(scope, "DailyBars", deploy.DailyBars, stage),
		analyses:   newOwnedTable(scope, "PortfolioAnalyses", deploy.PortfolioAnalyses, stage),
		userPortfolios: awsdynamodb.Table_FromTableName(scope, jsii.String("UserPortfolios"),
			jsii.String(deploy.UserPortfolios.Name(stage))),
		portfolioPositions: awsdynamodb.Table_FromTableName(scope, jsii.String("PortfolioPositions"),
			jsii.String(deploy.PortfolioPositions.Name(stage))),
	}
}

// newOwnedTable creates a table from its spec: on-demand billing, point-in-time
// recovery, encryption at rest with the AWS managed key, per-stage
// retention, and the spec's TTL attribute when it has one.
func newOwnedTable(scope constructs.Construct, id string, spec deploy.Table, stage string) awsdynamodb.Table {
	if spec.Shared {
		panic(fmt.Sprintf("table %s is shared: import it, do not create it", spec.Base))
	}
	props := &awsdynamodb.TableProps{
		TableName:    jsii.String(spec.Name(stage)),
		PartitionKey: attribute(spec.PartitionKey),
		BillingMode:  awsdynamodb.BillingMode_PAY_PER_REQUEST,
		PointInTimeRecoverySpecification: &awsdynamodb.PointInTimeRecoverySpecification{
			PointInTimeRecoveryEnabled: jsii.Bool(true),
		},
		Encryption:         awsdynamodb.TableEncryption_AWS_MANAGED,
		DeletionProtection: jsii.Bool(isProd(stage)),
		RemovalPolicy:      removalPolicy(stage),
	}
	if spec.SortKey != nil {
		props.SortKey = attribute(*spec.SortKey)
	}
	if spec.TTLAttribute != "" {
		props.TimeToLiveAttribute = jsii.String(spec.TTLAttribute)
	}
	return awsdynamodb.NewTable(scope, jsii.String(id), props)
}

func attribute(k deploy.Key) *awsdynamodb.Attribute {
	t := awsdynamodb.AttributeType_STRING
	switch k.Type {
	case deploy.String:
	case deploy.Number:
		t = awsdynamodb.AttributeType_NUMBER
	default:
		panic(fmt.Sprintf("key %s: unsupported attribute type %q", k.Name, k.Type))
	}
	return &awsdynamodb.Attribute{Name: jsii.String(k.Name), Type: t}
}

// Table actions granted in this stack. They are listed here, not spread across
// grant helpers, so a reviewer sees every DynamoDB permission in one place.
// sharedReadActions never include a write: the shared tables belong to
// portfolio-api. Only Scan: pkg/portfoliodb reads them with paginated scans
// and nothing else (no Query, no GetItem), so nothing more is granted.
var (
	sharedReadActions = []string{"dynamodb:Scan"}
	// dailyBarsActions are pkg/bardb's calls: processTicker reads and
	// writes the stored history (Query, GetItem; PutItem, BatchWriteItem);
	// processTickers' catch-up run reads the day's state (GetItem).
	dailyBarsActions = []string{"dynamodb:BatchWriteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"}
)

// allowTable grants actions on exactly one table ARN (no index ARNs: the
// service uses no secondary index).
func allowTable(role awsiam.IRole, table awsdynamodb.ITable, actions ...string) {
	allow(role, actions, *table.TableArn())
}
