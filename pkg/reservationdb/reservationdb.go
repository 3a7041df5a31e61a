// Package reservationdb is the repository of analysis-reservations-{stage},
// the analysis ledger: what makes paid work durable. It holds two kinds of
// item, keyed by a hex SHA-256:
//
//   - a claim (analysis.Claim) per unit of paid work — a portfolio's
//     analysis, a batch of tickers — written with a conditional put before
//     anything is paid, so that two runs of the same work (an overlapping
//     schedule, a manual run, a redelivered message) cannot both pay, and
//     holding every answer paid for it, written the moment it arrived: a
//     run that takes over an expired claim resumes from them;
//   - a score entry (analysis.ScoreEntry) per ticker, data day, model and
//     prompt, naming the batch that scores it and, once done, holding the
//     score every portfolio reuses.
//
// Items expire by TTL (deploy.AttrExpiresAt).
package reservationdb

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zsmseven/backend/pkg/analysis"
	"github.com/zsmseven/backend/pkg/analysisdb"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/dynamoitem"
	"github.com/zsmseven/backend/pkg/retry"
)

// Attribute names besides the key (deploy.AttrReservationKey) and the TTL
// (deploy.AttrExpiresAt).
const (
	AttrKind       = "kind"
	AttrPortfolio  = "portfolio"
	AttrDataAsOf   = "dataAsOf"
	AttrOwner      = "owner"
	AttrState      = "state"
	AttrLeaseUntil = "leaseUntil" // N, epoch milliseconds
	AttrAnalysis   = "analysis"   // the stored analysis's timestamp (sort key)
	AttrStatus     = "status"     // the stored analysis's status
	AttrCreatedAt  = "createdAt"
	AttrMembers    = "members" // L of S: a batch's score-entry keys
	AttrAnswers    = "answers" // L of M: the answers paid for the claim
	AttrVersion    = "version" // N: raised by every write of a claim
	AttrTicker     = "ticker"
	AttrBatch      = "batch"
	AttrData       = "data"
	AttrVerdict    = "verdict"
	AttrModel      = "model"
	AttrReason     = "reason"
)

// KindScore marks a score entry (claims carry analysis.ClaimPortfolio or
// analysis.ClaimBatch).
const KindScore = "score"

// MaxItemBytes is the size budget of an item, below DynamoDB's 400 KB
// (attribute names included). A claim holds at most two answers (an answer
// and its repair's) of at most analysis.MaxKeptAnswerBytes each — 320 KB
// even if nothing compresses — compressed beyond compressAbove bytes when
// that makes them smaller.
const MaxItemBytes = 380_000

// compressAbove is the answer length from which its content is stored
// gzip-compressed (a binary attribute).
const compressAbove = 8 << 10

// ErrTooLarge means an item would exceed MaxItemBytes: it is not written.
var ErrTooLarge = errors.New("ledger item over its size budget")

// ErrTooManyAnswers means a claim holds more than
// analysis.MaxAnswersPerClaim answers: it is not written.
var ErrTooManyAnswers = fmt.Errorf("a claim holds at most %d answers", analysis.MaxAnswersPerClaim)

// DynamoDBAPI is the part of the DynamoDB client the repository uses.
type DynamoDBAPI interface {
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
}

var _ DynamoDBAPI = (*dynamodb.Client)(nil)

// Store reads and writes the ledger.
type Store struct {
	client DynamoDBAPI
	table  string
	// Now is the clock the leases are compared with (time.Now if nil).
	Now func() time.Time
}

// New returns a store over the table (deploy.AnalysisReservations.Name(stage)).
func New(client DynamoDBAPI, table string) *Store {
	return &Store{client: client, table: table}
}

// ErrNotOwner means the claim (or score entry) is no longer the caller's:
// its lease ran out and another run took it over (or it is gone), or the
// write is older than the stored claim.
var ErrNotOwner = errors.New("the claim is held by another run")

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Claim takes c's key for c.Owner, pending until c.LeaseUntil — or, when
// c.State is analysis.StatePlanned (the fan-out's plan), planned until then:
// when no claim of the key exists (c is written as it is), or when the
// existing one is pending or planned with an expired lease — its owner died,
// gave up, or its message is late — or planned and c.Queued (its own queue
// message). A claim taken over keeps everything it holds (its members, its
// paid answers), and the take-over is conditional on the version read: a
// write of the previous owner in between makes it read again. It reports
// whether the caller holds it; if not, it returns the claim that holds the
// key (live, planned, or done).
func (s *Store) Claim(ctx context.Context, c analysis.Claim) (analysis.Claim, bool, error) {
	state := analysis.StatePending
	if c.State == analysis.StatePlanned {
		state = analysis.StatePlanned
	}
	for range 4 {
		cur, found, err := s.Get(ctx, c.Key)
		if err != nil {
			return analysis.Claim{}, false, err
		}
		var cond string
		var names map[string]string
		var values map[string]types.AttributeValue
		next := c
		switch {
		case !found:
			next.Version = 1
			cond, names = "attribute_not_exists(#k)", map[string]string{"#k": deploy.AttrReservationKey}
		case cur.TakeableBy(c, s.now()):
			next = cur
			next.Owner, next.LeaseUntil, next.Version = c.Owner, c.LeaseUntil, cur.Version+1
			if len(next.Members) == 0 {
				next.Members = c.Members
			}
			if cur.Version == 0 {
				// Written before claims had a version.
				cond = "attribute_not_exists(#ver) AND #owner = :old AND #lease = :oldLease"
				names = map[string]string{"#ver": AttrVersion, "#owner": AttrOwner, "#lease": AttrLeaseUntil}
				values = map[string]types.AttributeValue{":old": str(cur.Owner), ":oldLease": millis(cur.LeaseUntil)}
			} else {
				cond, names = "#ver = :ver", map[string]string{"#ver": AttrVersion}
				values = map[string]types.AttributeValue{":ver": num(cur.Version)}
			}
		default:
			return cur, false, nil
		}
		next.State, next.Queued = state, false
		item, err := marshalClaim(next)
		if err != nil {
			return analysis.Claim{}, false, err
		}
		_, err = s.client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(s.table), Item: item,
			ConditionExpression: aws.String(cond), ExpressionAttributeNames: names, ExpressionAttributeValues: values})
		var cf *types.ConditionalCheckFailedException
		switch {
		case err == nil:
			return next, true, nil
		case !errors.As(err, &cf):
			return analysis.Claim{}, false, fmt.Errorf("claim %s in %s: %w", c.Key, s.table, err)
		}
		// Another run wrote it between the read and the put: read again.
	}
	return analysis.Claim{}, false, fmt.Errorf("claim %s in %s: %w", c.Key, s.table, retry.Transient(errors.New("the claim keeps changing hands"), 0))
}

// Get reads a claim (strongly consistent).
func (s *Store) Get(ctx context.Context, key string) (analysis.Claim, bool, error) {
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(s.table), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{deploy.AttrReservationKey: str(key)},
	})
	if err != nil {
		return analysis.Claim{}, false, fmt.Errorf("read claim %s in %s: %w", key, s.table, err)
	}
	if len(out.Item) == 0 {
		return analysis.Claim{}, false, nil
	}
	c, err := unmarshalClaim(out.Item)
	if err != nil {
		return analysis.Claim{}, false, fmt.Errorf("claim %s in %s: %w", key, s.table, err)
	}
	return c, true, nil
}

// Save writes the caller's claim as it holds it now — its paid answers
// above all. Every write of the caller's claim (Save, Complete, Release)
// must raise its version (analysis.Claim.Version): it fails with
// ErrNotOwner if c.Owner no longer holds the claim, or if c.Version is not
// above the stored one (a stale write).
func (s *Store) Save(ctx context.Context, c analysis.Claim) error {
	return s.putOwned(ctx, "save", c)
}

// Complete marks the caller's claim done (naming the stored analysis of a
// portfolio claim: c.Analysis, c.Status).
func (s *Store) Complete(ctx context.Context, c analysis.Claim) error {
	c.State = analysis.StateDone
	return s.putOwned(ctx, "complete", c)
}

// Release gives up the caller's claim without a result worth keeping (an
// outage): its lease is ended, and what it holds — the paid answers — stays
// for the run that claims it next.
func (s *Store) Release(ctx context.Context, c analysis.Claim) error {
	c.State, c.LeaseUntil = analysis.StatePending, time.UnixMilli(0).UTC()
	return s.putOwned(ctx, "release", c)
}

func (s *Store) putOwned(ctx context.Context, what string, c analysis.Claim) error {
	item, err := marshalClaim(c)
	if err != nil {
		return err
	}
	_, err = s.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(s.table), Item: item,
		ConditionExpression:       aws.String("#owner = :owner AND (attribute_not_exists(#ver) OR #ver < :ver)"),
		ExpressionAttributeNames:  map[string]string{"#owner": AttrOwner, "#ver": AttrVersion},
		ExpressionAttributeValues: map[string]types.AttributeValue{":owner": str(c.Owner), ":ver": num(c.Version)},
	})
	var cf *types.ConditionalCheckFailedException
	switch {
	case err == nil:
		return nil
	case errors.As(err, &cf):
		return retry.Permanent(fmt.Errorf("%s claim %s: %w", what, c.Key, ErrNotOwner))
	default:
		return fmt.Errorf("%s claim %s in %s: %w", what, c.Key, s.table, err)
	}
}

// Assign writes a pending score entry, naming its batch, unless the key has
// an entry already (another batch plans it, or it is scored): it reports
// whether e was written.
func (s *Store) Assign(ctx context.Context, e analysis.ScoreEntry) (bool, error) {
	return s.putPending(ctx, "assign", e, "attribute_not_exists(#k)", map[string]string{"#k": deploy.AttrReservationKey}, nil)
}

// Replan writes e — pending, naming its new batch — over the entry of its
// key if that one is still pending in batch from (a batch done without
// scoring it, or an entry whose data is not the ticker's): it reports
// whether e was written. An entry scored or re-planned meanwhile is left.
func (s *Store) Replan(ctx context.Context, e analysis.ScoreEntry, from string) (bool, error) {
	return s.putPending(ctx, "re-plan", e, "#batch = :from AND #state = :pending AND #kind = :score",
		map[string]string{"#batch": AttrBatch, "#state": AttrState, "#kind": AttrKind},
		map[string]types.AttributeValue{":from": str(from), ":pending": str(analysis.StatePending), ":score": str(KindScore)})
}

// putPending writes e pending if cond holds, and reports whether it did.
func (s *Store) putPending(ctx context.Context, what string, e analysis.ScoreEntry, cond string, names map[string]string, values map[string]types.AttributeValue) (bool, error) {
	e.State = analysis.StatePending
	_, err := s.client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(s.table), Item: marshalScore(e),
		ConditionExpression: aws.String(cond), ExpressionAttributeNames: names, ExpressionAttributeValues: values})
	var cf *types.ConditionalCheckFailedException
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &cf):
		return false, nil
	default:
		return false, fmt.Errorf("%s score %s in %s: %w", what, e.Key, s.table, err)
	}
}

// Settle writes a done score entry, if its batch still owns it (e.Batch).
func (s *Store) Settle(ctx context.Context, e analysis.ScoreEntry) error {
	e.State = analysis.StateDone
	_, err := s.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(s.table), Item: marshalScore(e),
		ConditionExpression:       aws.String("#batch = :batch"),
		ExpressionAttributeNames:  map[string]string{"#batch": AttrBatch},
		ExpressionAttributeValues: map[string]types.AttributeValue{":batch": str(e.Batch)},
	})
	var cf *types.ConditionalCheckFailedException
	switch {
	case err == nil:
		return nil
	case errors.As(err, &cf):
		return retry.Permanent(fmt.Errorf("settle score %s: %w", e.Key, ErrNotOwner))
	default:
		return fmt.Errorf("settle score %s in %s: %w", e.Key, s.table, err)
	}
}

// batchGetMax is the most keys one BatchGetItem reads.
const batchGetMax = 100

// Scores reads the score entries of keys (strongly consistent), by key; a
// key without an entry is absent from the map. An entry that cannot be
// read is an error naming it.
func (s *Store) Scores(ctx context.Context, keys []string) (map[string]analysis.ScoreEntry, error) {
	out := make(map[string]analysis.ScoreEntry, len(keys))
	seen := map[string]bool{}
	var pending []map[string]types.AttributeValue
	for _, k := range keys {
		if !seen[k] {
			seen[k] = true
			pending = append(pending, map[string]types.AttributeValue{deploy.AttrReservationKey: str(k)})
		}
	}
	for attempt := 0; len(pending) > 0; attempt++ {
		if attempt > 0 {
			if attempt > 8 {
				return nil, fmt.Errorf("read scores in %s: %w", s.table, retry.Transient(fmt.Errorf("%d keys left unprocessed", len(pending)), 0))
			}
			if err := retry.Sleep(ctx, time.Duration(attempt)*50*time.Millisecond); err != nil {
				return nil, err
			}
		}
		var next []map[string]types.AttributeValue
		for start := 0; start < len(pending); start += batchGetMax {
			chunk := pending[start:min(start+batchGetMax, len(pending))]
			res, err := s.client.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: map[string]types.KeysAndAttributes{
				s.table: {Keys: chunk, ConsistentRead: aws.Bool(true)}}})
			if err != nil {
				return nil, fmt.Errorf("read scores in %s: %w", s.table, err)
			}
			for _, item := range res.Responses[s.table] {
				e, err := unmarshalScore(item)
				if err != nil {
					return nil, fmt.Errorf("score entry in %s: %w", s.table, err)
				}
				out[e.Key] = e
			}
			next = append(next, res.UnprocessedKeys[s.table].Keys...)
		}
		pending = next
	}
	return out, nil
}

func str(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

func num(v int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
}

func millis(t time.Time) types.AttributeValue { return num(t.UnixMilli()) }

func stamp(t time.Time) types.AttributeValue { return str(t.UTC().Format(time.RFC3339Nano)) }

func strs(v []string) types.AttributeValue {
	l := make([]types.AttributeValue, len(v))
	for i, s := range v {
		l[i] = str(s)
	}
	return &types.AttributeValueMemberL{Value: l}
}

func marshalClaim(c analysis.Claim) (map[string]types.AttributeValue, error) {
	item := map[string]types.AttributeValue{
		deploy.AttrReservationKey: str(c.Key),
		AttrKind:                  str(c.Kind),
		AttrDataAsOf:              str(c.DataAsOf),
		AttrOwner:                 str(c.Owner),
		AttrState:                 str(c.State),
		AttrLeaseUntil:            millis(c.LeaseUntil),
		AttrCreatedAt:             stamp(c.CreatedAt),
		deploy.AttrExpiresAt:      num(c.ExpiresAt.Unix()),
		AttrVersion:               num(c.Version),
	}
	for name, v := range map[string]string{AttrPortfolio: c.Portfolio, AttrAnalysis: c.Analysis, AttrStatus: c.Status} {
		if v != "" {
			item[name] = str(v)
		}
	}
	if len(c.Members) > 0 {
		item[AttrMembers] = strs(c.Members)
	}
	if len(c.Answers) > analysis.MaxAnswersPerClaim {
		return nil, retry.Permanent(fmt.Errorf("claim %s: %d answers: %w", c.Key, len(c.Answers), ErrTooManyAnswers))
	}
	if len(c.Answers) > 0 {
		l := make([]types.AttributeValue, len(c.Answers))
		for i, a := range c.Answers {
			m, err := marshalAnswer(a)
			if err != nil {
				return nil, err
			}
			l[i] = m
		}
		item[AttrAnswers] = &types.AttributeValueMemberL{Value: l}
	}
	if n := dynamoitem.Size(item); n > MaxItemBytes {
		return nil, retry.Permanent(fmt.Errorf("claim %s: %d bytes: %w (%d)", c.Key, n, ErrTooLarge, MaxItemBytes))
	}
	return item, nil
}

func marshalAnswer(a analysis.PaidAnswer) (types.AttributeValue, error) {
	m := map[string]types.AttributeValue{
		"request": str(a.Request), "finishReason": str(a.FinishReason), "model": str(a.Model),
		"usage": usage(a.Usage), "latencyMs": num(a.Latency.Milliseconds()), "attempts": num(int64(a.Attempts)), "paidAt": stamp(a.PaidAt),
	}
	if a.SystemFingerprint != "" {
		m["systemFingerprint"] = str(a.SystemFingerprint)
	}
	if a.Oversized {
		m["oversized"] = &types.AttributeValueMemberBOOL{Value: true}
	}
	if a.Usage.CostUSD != nil {
		m["costUsd"] = &types.AttributeValueMemberN{Value: strconv.FormatFloat(*a.Usage.CostUSD, 'f', -1, 64)}
	}
	m["content"] = str(a.Content)
	if len(a.Content) > compressAbove {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		if _, err := io.WriteString(zw, a.Content); err != nil {
			return nil, err
		}
		if err := zw.Close(); err != nil {
			return nil, err
		}
		if b.Len() < len(a.Content) {
			delete(m, "content")
			m["contentGz"] = &types.AttributeValueMemberB{Value: b.Bytes()}
		}
	}
	return &types.AttributeValueMemberM{Value: m}, nil
}

func usage(u analysis.Usage) types.AttributeValue {
	return &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{
		"promptTokens": num(int64(u.PromptTokens)), "cachedPromptTokens": num(int64(u.CachedPromptTokens)),
		"completionTokens": num(int64(u.CompletionTokens)), "totalTokens": num(int64(u.TotalTokens)), "reasoningTokens": num(int64(u.ReasoningTokens)),
	}}
}

func marshalScore(e analysis.ScoreEntry) map[string]types.AttributeValue {
	item := map[string]types.AttributeValue{
		deploy.AttrReservationKey: str(e.Key),
		AttrKind:                  str(KindScore),
		AttrTicker:                str(e.Ticker),
		AttrDataAsOf:              str(e.DataAsOf),
		AttrBatch:                 str(e.Batch),
		AttrState:                 str(e.State),
		AttrData:                  str(string(e.Data)),
		AttrCreatedAt:             stamp(e.CreatedAt),
		deploy.AttrExpiresAt:      num(e.ExpiresAt.Unix()),
	}
	if e.Model != "" {
		item[AttrModel] = str(e.Model)
	}
	if e.Reason != "" {
		item[AttrReason] = str(e.Reason)
	}
	if v := e.Verdict; v != nil {
		item[AttrVerdict] = analysisdb.TickerValue(*v)
	}
	return item
}

func unmarshalClaim(m map[string]types.AttributeValue) (analysis.Claim, error) {
	r := dynamoitem.NewReader(m)
	c := analysis.Claim{Key: r.Str(deploy.AttrReservationKey), Kind: r.Str(AttrKind), Portfolio: r.Str(AttrPortfolio), DataAsOf: r.Str(AttrDataAsOf),
		Owner: r.Str(AttrOwner), State: r.Str(AttrState), Analysis: r.Str(AttrAnalysis), Status: r.Str(AttrStatus),
		LeaseUntil: time.UnixMilli(r.Int(AttrLeaseUntil)).UTC(), CreatedAt: r.Time(AttrCreatedAt), ExpiresAt: time.Unix(r.Int(deploy.AttrExpiresAt), 0).UTC(),
		Members: r.Strs(AttrMembers)}
	if _, ok := m[AttrVersion]; ok {
		c.Version = r.Int(AttrVersion)
	}
	if c.Kind == "" {
		// Written before the ledger: a portfolio reservation.
		c.Kind = analysis.ClaimPortfolio
	}
	for _, ar := range r.Maps(AttrAnswers) {
		a, err := unmarshalAnswer(ar)
		if err != nil {
			r.Fail(AttrAnswers, err.Error())
			break
		}
		c.Answers = append(c.Answers, a)
	}
	if r.Err != nil {
		return analysis.Claim{}, r.Err
	}
	if c.State != analysis.StatePending && c.State != analysis.StateDone && c.State != analysis.StatePlanned {
		return analysis.Claim{}, fmt.Errorf("state %q is not %q, %q or %q", c.State, analysis.StatePending, analysis.StateDone, analysis.StatePlanned)
	}
	return c, nil
}

// unmarshalAnswer reads a paid answer; r is the answer's map (its
// problems are the claim's).
func unmarshalAnswer(r *dynamoitem.Reader) (analysis.PaidAnswer, error) {
	m := r.M
	a := analysis.PaidAnswer{Request: r.Str("request"), FinishReason: r.Str("finishReason"), Model: r.Str("model"), SystemFingerprint: r.Str("systemFingerprint"),
		Latency: time.Duration(r.Int("latencyMs")) * time.Millisecond, Attempts: int(r.Int("attempts")), PaidAt: r.Time("paidAt")}
	u := r.Sub("usage")
	a.Usage = analysis.Usage{PromptTokens: int(u.Int("promptTokens")), CachedPromptTokens: int(u.Int("cachedPromptTokens")),
		CompletionTokens: int(u.Int("completionTokens")), TotalTokens: int(u.Int("totalTokens")), ReasoningTokens: int(u.Int("reasoningTokens"))}
	if c, ok := r.Num("costUsd"); ok {
		a.Usage.CostUSD = &c
	}
	if b, ok := m["oversized"].(*types.AttributeValueMemberBOOL); ok {
		a.Oversized = b.Value
	}
	switch v := m["contentGz"].(type) {
	case *types.AttributeValueMemberB:
		zr, err := gzip.NewReader(bytes.NewReader(v.Value))
		if err != nil {
			return a, fmt.Errorf("contentGz: %w", err)
		}
		b, err := io.ReadAll(io.LimitReader(zr, analysis.MaxKeptAnswerBytes+1))
		if err != nil || len(b) > analysis.MaxKeptAnswerBytes {
			return a, errors.New("contentGz: not a kept answer")
		}
		a.Content = string(b)
	case nil:
		a.Content = r.Str("content")
	default:
		return a, errors.New("contentGz is not binary")
	}
	return a, r.Err
}

func unmarshalScore(m map[string]types.AttributeValue) (analysis.ScoreEntry, error) {
	r := dynamoitem.NewReader(m)
	e := analysis.ScoreEntry{Key: r.Str(deploy.AttrReservationKey), Ticker: r.Str(AttrTicker), DataAsOf: r.Str(AttrDataAsOf), Batch: r.Str(AttrBatch),
		State: r.Str(AttrState), Data: []byte(r.Str(AttrData)), Model: r.Str(AttrModel), Reason: r.Str(AttrReason),
		CreatedAt: r.Time(AttrCreatedAt), ExpiresAt: time.Unix(r.Int(deploy.AttrExpiresAt), 0).UTC()}
	if kind := r.Str(AttrKind); kind != KindScore {
		return e, fmt.Errorf("item %s is a %q, not a score entry", e.Key, kind)
	}
	if _, ok := m[AttrVerdict]; ok {
		v := analysisdb.ReadTicker(r.Sub(AttrVerdict))
		e.Verdict = &v
	}
	if r.Err != nil {
		return e, r.Err
	}
	if e.State != analysis.StatePending && e.State != analysis.StateDone {
		return e, fmt.Errorf("score %s: state %q", e.Key, e.State)
	}
	if e.State == analysis.StateDone && e.Verdict == nil {
		return e, fmt.Errorf("score %s: done without a verdict", e.Key)
	}
	return e, nil
}
