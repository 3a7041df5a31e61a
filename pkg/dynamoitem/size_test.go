package dynamoitem_test

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zsmseven/backend/internal/devstack/dynalite/dynalitetest"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/dynamoitem"
)

func TestMain(m *testing.M) { dynalitetest.Main(m) }

func s(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

func TestSize(t *testing.T) {
	item := map[string]types.AttributeValue{
		"k": s("abc"),                                                                           // 1 + 3
		"é": s("é"),                                                                             // 2 + 2
		"n": &types.AttributeValueMemberN{Value: "12345"},                                       // 1 + 4
		"b": &types.AttributeValueMemberBOOL{Value: true},                                       // 1 + 1
		"l": &types.AttributeValueMemberL{Value: []types.AttributeValue{s("ab"), s("c")}},       // 1 + 3 + (1+2) + (1+1)
		"m": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"x": s("yz")}}, // 1 + 3 + 1 + 1 + 2
	}
	if got, want := dynamoitem.Size(item), 4+4+5+2+9+8; got != want {
		t.Errorf("size %d, want %d", got, want)
	}
}

// The measure agrees with DynamoDB's limit as dynalite enforces it: an item
// just under the limit by this measure is stored, one just over refused.
func TestSizeAgreesWithTheLimit(t *testing.T) {
	env := dynalitetest.New(t, deploy.AnalysisReservations)
	table := deploy.AnalysisReservations.Name(env.Stage)
	put := func(n int) error {
		item := map[string]types.AttributeValue{deploy.AttrReservationKey: s("k"), "v": s(strings.Repeat("x", n))}
		_, err := env.Client.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(table), Item: item})
		return err
	}
	base := dynamoitem.Size(map[string]types.AttributeValue{deploy.AttrReservationKey: s("k"), "v": s("")})
	if err := put(dynamoitem.Limit - base); err != nil {
		t.Errorf("an item of exactly the limit was refused: %v", err)
	}
	if err := put(dynamoitem.Limit - base + 1); err == nil {
		t.Error("an item one byte over the limit was stored")
	}
}
