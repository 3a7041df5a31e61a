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
	"github.com/zsmseven/backend/pkg/marketdata"
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
	// AttrPartial is true on a row computed while its window of history was
	// still being filled (absent otherwise): Has and Stored do not count it,
	// so it is computed again.
	AttrPartial = "partial"
)

// DynamoDBAPI is the part of the DynamoDB client the store uses: PutItem and
// GetItem for processTicker (a row, and whether the row of a day is stored),
// BatchGetItem for processTickers' catch-up run, Query for the readers.
type DynamoDBAPI interface {
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
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

// Has reports whether the complete row of ticker for the trading day date
// (YYYY-MM-DD) is stored: a redelivered message costs no market-data call. A
// partial row (Row.Partial) does not count.
func (s *Store) Has(ctx context.Context, ticker, date string) (bool, error) {
	key, err := rowKey(ticker, date)
	if err != nil {
		return false, retry.Permanent(err)
	}
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(s.table), Key: key,
		ProjectionExpression: aws.String(projection), ExpressionAttributeNames: projectionNames,
	})
	if err != nil {
		return false, fmt.Errorf("get %s %s from %s: %w", ticker, date, s.table, err)
	}
	return complete(out.Item), nil
}

// projection reads what Has and Stored need: the ticker and the partial
// flag.
const projection = "#t, #p"

var projectionNames = map[string]string{"#t": deploy.AttrTicker, "#p": AttrPartial}

// complete reports whether an item read with projection is a complete row.
func complete(it map[string]types.AttributeValue) bool {
	if len(it) == 0 {
		return false
	}
	p, ok := it[AttrPartial].(*types.AttributeValueMemberBOOL)
	return !ok || !p.Value
}

// maxBatchGet is the most keys one BatchGetItem takes.
const maxBatchGet = 100

// Stored returns which of tickers have their complete row of the trading day
// date stored (a partial row does not count), 100 keys a call, re-asking for the keys DynamoDB leaves
// unprocessed (within a few attempts; what is left is an error).
func (s *Store) Stored(ctx context.Context, tickers []string, date string) (map[string]bool, error) {
	out := make(map[string]bool, len(tickers))
	for start := 0; start < len(tickers); start += maxBatchGet {
		var keys []map[string]types.AttributeValue
		for _, t := range tickers[start:min(start+maxBatchGet, len(tickers))] {
			k, err := rowKey(t, date)
			if err != nil {
				return nil, retry.Permanent(err)
			}
			keys = append(keys, k)
		}
		pending := map[string]types.KeysAndAttributes{s.table: {
			Keys: keys, ProjectionExpression: aws.String(projection), ExpressionAttributeNames: projectionNames,
		}}
		_, err := batchGetRetry.Do(ctx, func(ctx context.Context, _ int) error {
			res, err := s.client.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: pending})
			if err != nil {
				return retry.Permanent(err)
			}
			for _, it := range res.Responses[s.table] {
				if v, ok := it[deploy.AttrTicker].(*types.AttributeValueMemberS); ok && complete(it) {
					out[v.Value] = true
				}
			}
			pending = res.UnprocessedKeys
			if len(pending[s.table].Keys) > 0 {
				return retry.Transient(fmt.Errorf("%d keys unprocessed", len(pending[s.table].Keys)), 0)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("rows of %s in %s: %w", date, s.table, err)
		}
	}
	return out, nil
}

// batchGetRetry re-asks for unprocessed keys.
var batchGetRetry = retry.Policy{Attempts: 5, Base: 50 * time.Millisecond, Cap: time.Second}

// rowKey is the key of ticker's row of the trading day date.
func rowKey(ticker, date string) (map[string]types.AttributeValue, error) {
	if !symbol.Valid(ticker) {
		return nil, fmt.Errorf("row key: ticker %q is not a normalized symbol", ticker)
	}
	ts, err := marketdata.CloseInstant(date)
	if err != nil {
		return nil, fmt.Errorf("row key of %s: %w", ticker, err)
	}
	return map[string]types.AttributeValue{
		deploy.AttrTicker:    &types.AttributeValueMemberS{Value: ticker},
		deploy.AttrTimestamp: &types.AttributeValueMemberS{Value: ts.UTC().Format(time.RFC3339)},
	}, nil
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
	if r.Partial {
		item[AttrPartial] = &types.AttributeValueMemberBOOL{Value: true}
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
	if p, ok := item[AttrPartial].(*types.AttributeValueMemberBOOL); ok {
		r.Partial = p.Value
	}
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
