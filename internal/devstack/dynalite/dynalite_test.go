package dynalite_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/zsmseven/backend/internal/devstack/dynalite"
	"github.com/zsmseven/backend/internal/devstack/dynalite/dynalitetest"
	"github.com/zsmseven/backend/pkg/deploy"
)

func TestMain(m *testing.M) { dynalitetest.Main(m) }

func TestCreateTablesFromSpecs(t *testing.T) {
	env := dynalitetest.New(t)
	for _, spec := range deploy.Tables {
		out, err := env.Client.DescribeTable(context.Background(), &dynamodb.DescribeTableInput{TableName: aws.String(spec.Name(env.Stage))})
		if err != nil {
			t.Fatalf("describe %s: %v", spec.Name(env.Stage), err)
		}
		ks := out.Table.KeySchema
		if got := aws.ToString(ks[0].AttributeName); got != spec.PartitionKey.Name {
			t.Errorf("%s: hash key %q, want %q", spec.Base, got, spec.PartitionKey.Name)
		}
		if spec.SortKey != nil && (len(ks) != 2 || aws.ToString(ks[1].AttributeName) != spec.SortKey.Name) {
			t.Errorf("%s: range key %v, want %q", spec.Base, ks, spec.SortKey.Name)
		}
	}
	// Creating again is a no-op, as on a data directory kept between runs.
	if err := dynalite.CreateTables(context.Background(), env.Client, env.Stage); err != nil {
		t.Fatalf("second CreateTables: %v", err)
	}
}
