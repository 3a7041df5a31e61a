package devstack

import (
	"context"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/portfoliodb"
)

// The sample portfolio that local runs seed into the shared tables.
const (
	SamplePortfolio   = deploy.DefaultPortfolio
	samplePortfolioID = "zsm-seven"
	sampleUserID      = "local-sample-user"
)

// SampleSymbols are the holdings of the sample portfolio.
var SampleSymbols = []string{"AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "META", "TSLA"}

// SeedSamplePortfolio writes the sample portfolio into the stage's shared
// tables, in the documented shape of portfolio-api's items (a portfolio item
// with userId, portfolioId and name; one position item per symbol with
// portfolioId, positionId, ticker and quantity), unless a portfolio of that
// name exists. It reports whether it wrote anything.
func SeedSamplePortfolio(ctx context.Context, db *dynamodb.Client, stage string) (bool, error) {
	pfTable, posTable := deploy.UserPortfolios.Name(stage), deploy.PortfolioPositions.Name(stage)
	existing, err := portfoliodb.NewReader(db, pfTable, posTable).List(ctx)
	if err != nil {
		return false, fmt.Errorf("seed: %w", err)
	}
	for _, p := range existing {
		if p.Name == SamplePortfolio {
			return false, nil
		}
	}
	put := func(table string, item map[string]types.AttributeValue) error {
		if _, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: item}); err != nil {
			return fmt.Errorf("seed %s: %w", table, err)
		}
		return nil
	}
	for _, sym := range SampleSymbols {
		if err := put(posTable, map[string]types.AttributeValue{
			"portfolioId": &types.AttributeValueMemberS{Value: samplePortfolioID},
			"positionId":  &types.AttributeValueMemberS{Value: sym},
			"ticker":      &types.AttributeValueMemberS{Value: sym},
			"quantity":    &types.AttributeValueMemberN{Value: strconv.Itoa(10)},
		}); err != nil {
			return false, err
		}
	}
	// The portfolio item last: a run interrupted half-way seeds again.
	if err := put(pfTable, map[string]types.AttributeValue{
		"userId":      &types.AttributeValueMemberS{Value: sampleUserID},
		"portfolioId": &types.AttributeValueMemberS{Value: samplePortfolioID},
		"name":        &types.AttributeValueMemberS{Value: SamplePortfolio},
	}); err != nil {
		return false, err
	}
	return true, nil
}
