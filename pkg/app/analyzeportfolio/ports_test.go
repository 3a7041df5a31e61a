package analyzeportfolio_test

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/stretchr/testify/assert"

	"github.com/zsmseven/backend/pkg/analyzer"
	"github.com/zsmseven/backend/pkg/app/analyzeportfolio"
	"github.com/zsmseven/backend/pkg/portfoliodb"
)

// emptyTables answers every scan with no item: no portfolio exists.
type emptyTables struct{}

func (emptyTables) Scan(context.Context, *dynamodb.ScanInput, ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	return &dynamodb.ScanOutput{}, nil
}

// A name no portfolio has is the analyzer's ErrUnknownPortfolio, and keeps
// the reader's words, naming the portfolio.
func TestHoldingsOfAnUnknownPortfolio(t *testing.T) {
	ports := analyzeportfolio.SharedTables(portfoliodb.NewReader(emptyTables{}, "user-portfolios-test", "portfolio-positions-test"))
	_, _, err := ports.Holdings(context.Background(), "Nobody's")
	assert.ErrorIs(t, err, analyzer.ErrUnknownPortfolio)
	assert.True(t, errors.Is(err, portfoliodb.ErrUnknownPortfolio))
	assert.Equal(t, `unknown portfolio "Nobody's"`, err.Error())
}
