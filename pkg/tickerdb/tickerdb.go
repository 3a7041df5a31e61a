package tickerdb

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/indicators"
	"github.com/zsmseven/backend/pkg/retry"
	"github.com/zsmseven/backend/pkg/symbol"
)

// Attribute names of a ticker-data item besides the keys (deploy.AttrTicker,
// deploy.AttrTimestamp) and the indicators, which are stored under their
// indicators.Fields names ("rsi", "ma50", ...). architecture.md documents
// them.
const (
	AttrPrice     = "price"
	AttrAsOf      = "asOf"
	AttrBars      = "bars"
	AttrFetchedAt = "fetchedAt"
	AttrSource    = "source"
)

// DynamoDBAPI is the part of the DynamoDB client the store uses.
type DynamoDBAPI interface {
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
}

var _ DynamoDBAPI = (*dynamodb.Client)(nil)

// Store reads and writes the ticker-data table.
type Store struct {
	client DynamoDBAPI
	table  string
}

// NewStore returns a store over the named table (deploy.TickerData.Name(stage)).
func NewStore(client DynamoDBAPI, table string) *Store {
	return &Store{client: client, table: table}
}

// Put writes r. The key is the ticker and the close instant of its trading
// day, so writing the same ticker and day again replaces the item. A row that
// cannot be stored (bad ticker, zero timestamp, non-finite numbers) is a
// permanent error.
func (s *Store) Put(ctx context.Context, r Row) error {
	item, err := marshal(r)
	if err != nil {
		return retry.Permanent(fmt.Errorf("store %s row: %w", r.Ticker, err))
	}
	if _, err := s.client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(s.table), Item: item}); err != nil {
		return fmt.Errorf("put %s %s into %s: %w", r.Ticker, r.AsOf, s.table, err)
	}
	return nil
}

// Latest returns the newest row of ticker (the greatest timestamp), and false
// when the table holds none.
func (s *Store) Latest(ctx context.Context, ticker string) (Row, bool, error) {
	out, err := s.client.Query(ctx, &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		KeyConditionExpression:    aws.String("#t = :t"),
		ExpressionAttributeNames:  map[string]string{"#t": deploy.AttrTicker},
		ExpressionAttributeValues: map[string]types.AttributeValue{":t": &types.AttributeValueMemberS{Value: ticker}},
		ScanIndexForward:          aws.Bool(false),
		Limit:                     aws.Int32(1),
	})
	if err != nil {
		return Row{}, false, fmt.Errorf("query latest %s in %s: %w", ticker, s.table, err)
	}
	if len(out.Items) == 0 {
		return Row{}, false, nil
	}
	r, err := unmarshal(out.Items[0])
	if err != nil {
		return Row{}, false, fmt.Errorf("latest %s in %s: %w", ticker, s.table, err)
	}
	return r, true, nil
}

func marshal(r Row) (map[string]types.AttributeValue, error) {
	if !symbol.Valid(r.Ticker) {
		return nil, fmt.Errorf("ticker %q is not a normalized symbol", r.Ticker)
	}
	if r.Timestamp.IsZero() {
		return nil, errors.New("no timestamp")
	}
	if _, err := time.Parse(time.DateOnly, r.AsOf); err != nil {
		return nil, fmt.Errorf("asOf %q is not a date", r.AsOf)
	}
	item := map[string]types.AttributeValue{
		deploy.AttrTicker:    &types.AttributeValueMemberS{Value: r.Ticker},
		deploy.AttrTimestamp: &types.AttributeValueMemberS{Value: r.Timestamp.UTC().Format(time.RFC3339)},
		AttrAsOf:             &types.AttributeValueMemberS{Value: r.AsOf},
		AttrBars:             &types.AttributeValueMemberN{Value: strconv.Itoa(r.Bars)},
	}
	if err := putNumber(item, AttrPrice, &r.Price); err != nil {
		return nil, err
	}
	for _, f := range indicators.Fields {
		if err := putNumber(item, f.Name, f.Get(r.Snapshot)); err != nil {
			return nil, err
		}
	}
	if !r.FetchedAt.IsZero() {
		item[AttrFetchedAt] = &types.AttributeValueMemberS{Value: r.FetchedAt.UTC().Format(time.RFC3339Nano)}
	}
	if r.Source != "" {
		item[AttrSource] = &types.AttributeValueMemberS{Value: r.Source}
	}
	return item, nil
}

// putNumber stores *v as N; nil leaves the attribute absent.
func putNumber(item map[string]types.AttributeValue, name string, v *float64) error {
	if v == nil {
		return nil
	}
	if math.IsNaN(*v) || math.IsInf(*v, 0) {
		return fmt.Errorf("%s is %v", name, *v)
	}
	item[name] = &types.AttributeValueMemberN{Value: strconv.FormatFloat(*v, 'f', -1, 64)}
	return nil
}

func unmarshal(item map[string]types.AttributeValue) (Row, error) {
	var r Row
	var err error
	str := func(name string) string {
		if v, ok := item[name].(*types.AttributeValueMemberS); ok {
			return v.Value
		}
		return ""
	}
	num := func(name string) (*float64, error) {
		v, ok := item[name].(*types.AttributeValueMemberN)
		if !ok {
			return nil, nil
		}
		f, err := strconv.ParseFloat(v.Value, 64)
		if err != nil {
			return nil, fmt.Errorf("%s %q is not a number", name, v.Value)
		}
		return &f, nil
	}
	r.Ticker, r.AsOf, r.Source = str(deploy.AttrTicker), str(AttrAsOf), str(AttrSource)
	if r.Timestamp, err = time.Parse(time.RFC3339, str(deploy.AttrTimestamp)); err != nil {
		return Row{}, fmt.Errorf("timestamp %q: %w", str(deploy.AttrTimestamp), err)
	}
	if s := str(AttrFetchedAt); s != "" {
		if r.FetchedAt, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return Row{}, fmt.Errorf("fetchedAt %q: %w", s, err)
		}
	}
	price, err := num(AttrPrice)
	if err != nil {
		return Row{}, err
	}
	if price == nil {
		return Row{}, errors.New("no price")
	}
	r.Price = *price
	for _, f := range indicators.Fields {
		v, err := num(f.Name)
		if err != nil {
			return Row{}, err
		}
		if v != nil {
			f.Set(&r.Snapshot, *v)
		}
	}
	bars, err := num(AttrBars)
	if err != nil {
		return Row{}, err
	}
	if bars != nil {
		r.Bars = int(*bars)
	}
	return r, nil
}
