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
	// reservations is the analysis ledger: analyzePortfolio's claims of paid
	// work with the answers paid for them, and the tickers' scores (TTL).
	reservations awsdynamodb.Table
	// Shared tables of portfolio-api: imported by name, read-only here.
	userPortfolios     awsdynamodb.ITable
	portfolioPositions awsdynamodb.ITable
}

// isProd reports whether the stage keeps its data when the stack goes away.
func isProd(stage string) bool { return stage == deploy.StageProd }

// removalPolicy keeps prod data and destroys dev's, so a dev stack can be torn
// down completely while prod data survives a mistaken deletion or replacement.
//
// Prod uses RETAIN_ON_UPDATE_OR_DELETE (DeletionPolicy RetainExceptOnCreate,
// UpdateReplacePolicy Retain), not RETAIN: CloudFormation keeps a Retain
// resource even when the create that made it rolls back, and because every
// resource here has a fixed name, each later deploy would then fail with
// "already exists". RetainExceptOnCreate deletes what a failed first create
// made (it is new and empty) and retains it on every later delete or replace.
func removalPolicy(stage string) awscdk.RemovalPolicy {
	if isProd(stage) {
		return awscdk.RemovalPolicy_RETAIN_ON_UPDATE_OR_DELETE
	}
	return awscdk.RemovalPolicy_DESTROY
}

// ownedTables are the tables this stack creates, by construct id. The
// template and the import mapping (importMapping) are both built from this
// list, so the mapping names exactly the template's imported tables.
// imported marks the tables the old Serverless stack already owns
// (docs/migration.md); the others are new with this service and are created
// by the deploy that follows the import.
var ownedTables = []struct {
	id       string
	spec     deploy.Table
	imported bool
}{
	{"TickerData", deploy.TickerData, true},
	{"PortfolioAnalyses", deploy.PortfolioAnalyses, true},
	{"DailyBars", deploy.DailyBars, false},
	{"AnalysisReservations", deploy.AnalysisReservations, false},
}

func newStorage(scope constructs.Construct, stage string, importing bool) *storage {
	owned := map[string]awsdynamodb.Table{}
	for _, t := range ownedTables {
		owned[t.id] = newOwnedTable(scope, t.id, t.spec, stage, importing && t.imported)
	}
	return &storage{
		tickerData:   owned["TickerData"],
		dailyBars:    owned["DailyBars"],
		analyses:     owned["PortfolioAnalyses"],
		reservations: owned["AnalysisReservations"],
		userPortfolios: awsdynamodb.Table_FromTableName(scope, jsii.String("UserPortfolios"),
			jsii.String(deploy.UserPortfolios.Name(stage))),
		portfolioPositions: awsdynamodb.Table_FromTableName(scope, jsii.String("PortfolioPositions"),
			jsii.String(deploy.PortfolioPositions.Name(stage))),
	}
}

// newOwnedTable creates a table from its spec: on-demand billing, point-in-time
// recovery, encryption at rest with the AWS managed key, per-stage
// retention, and the spec's TTL attribute when it has one.
//
// importing renders it for `cdk import` of a table that already exists (the
// old Serverless stack's, docs/migration.md): DeletionPolicy Retain, the
// plain contract of an import (whatever happens to the import, the table
// stays), and only the properties the existing table must already have — its
// name, its keys, on-demand billing and the AWS managed KMS key (the
// migration's checks make sure of the last two before the import).
// CloudFormation does not compare an imported resource with the template; a
// property the template claimed but the table lacked would never be applied,
// because the next deploy would see no change. Point-in-time recovery,
// deletion protection and tags are therefore left out of the import: they are
// a change the next `make deploy` applies (and a rollback of that deploy can
// undo). Encryption stays in: an update that adds it cannot be rolled back
// cleanly (CloudFormation would have to remove the setting again), so the
// table is switched to the managed key by hand before the import instead.
func newOwnedTable(scope constructs.Construct, id string, spec deploy.Table, stage string, importing bool) awsdynamodb.Table {
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
	if importing {
		props.RemovalPolicy = awscdk.RemovalPolicy_RETAIN
	}
	if spec.SortKey != nil {
		props.SortKey = attribute(*spec.SortKey)
	}
	if spec.TTLAttribute != "" {
		props.TimeToLiveAttribute = jsii.String(spec.TTLAttribute)
	}
	table := awsdynamodb.NewTable(scope, jsii.String(id), props)
	if importing {
		cfn := table.Node().DefaultChild().(awsdynamodb.CfnTable)
		for _, p := range importOmitted {
			cfn.AddPropertyDeletionOverride(jsii.String(p))
		}
	}
	return table
}

// importOmitted are the table properties left out of the import template (see
// newOwnedTable); the deploy after the import sets them.
var importOmitted = []string{"PointInTimeRecoverySpecification", "DeletionProtectionEnabled", "Tags"}

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
	// reservationActions are pkg/reservationdb's calls on the analysis
	// ledger: the conditional puts (a claim, its paid answers, a score),
	// the consistent read of a claim, and the batched consistent read of
	// the tickers' scores. Nothing is deleted: a released claim keeps its
	// paid answers, and items expire by TTL.
	reservationActions = []string{"dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:PutItem"}
	// dailyBarsActions are pkg/bardb's calls: processTicker reads and
	// writes the stored history (Query, GetItem; PutItem, BatchWriteItem;
	// UpdateItem: the night's and the market's states merged, never written
	// whole, and the claims that let one message group's consumer make a
	// call the others wait for); processTickers' catch-up run reads the
	// day's state (GetItem).
	dailyBarsActions = []string{"dynamodb:BatchWriteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"}
)

// allowTable grants actions on exactly one table ARN (no index ARNs: the
// service uses no secondary index).
func allowTable(role awsiam.IRole, table awsdynamodb.ITable, actions ...string) {
	allow(role, actions, *table.TableArn())
}
