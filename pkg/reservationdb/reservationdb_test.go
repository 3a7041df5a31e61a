package reservationdb_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zsmseven/backend/internal/devstack/dynalite/dynalitetest"
	"github.com/zsmseven/backend/pkg/analysis"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/reservationdb"
)

func TestMain(m *testing.M) { dynalitetest.Main(m) }

func store(t *testing.T, now *time.Time) (*reservationdb.Store, *dynamodb.Client, string) {
	env := dynalitetest.New(t, deploy.AnalysisReservations)
	table := deploy.AnalysisReservations.Name(env.Stage)
	s := reservationdb.New(env.Client, table)
	s.Now = func() time.Time { return *now }
	return s, env.Client, table
}

func claim(key, owner string, lease time.Time) analysis.Claim {
	return analysis.Claim{Key: key, Kind: analysis.ClaimPortfolio, Portfolio: "P", DataAsOf: "2026-11-27", Owner: owner, LeaseUntil: lease,
		CreatedAt: lease.Add(-5 * time.Minute), ExpiresAt: lease.Add(7 * 24 * time.Hour)}
}

func TestClaimCompleteRelease(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 28, 6, 0, 0, 0, time.UTC)
	s, _, _ := store(t, &now)
	lease := now.Add(5 * time.Minute)

	got, won, err := s.Claim(ctx, claim("k1", "run-a", lease))
	require.NoError(t, err)
	require.True(t, won)
	assert.Equal(t, analysis.StatePending, got.State)

	held, won, err := s.Claim(ctx, claim("k1", "run-b", lease))
	require.NoError(t, err)
	assert.False(t, won, "a live lease is not taken")
	assert.Equal(t, "run-a", held.Owner)
	assert.Equal(t, lease, held.LeaseUntil)

	// run-b cannot save, complete or release what it does not hold.
	r := held
	r.Owner, r.Analysis, r.Status = "run-b", "2026-11-28T06:01:00.000Z", "ok"
	assert.ErrorIs(t, s.Complete(ctx, r), reservationdb.ErrNotOwner)
	assert.ErrorIs(t, s.Release(ctx, r), reservationdb.ErrNotOwner)
	assert.ErrorIs(t, s.Save(ctx, r), reservationdb.ErrNotOwner)

	// run-a pays and keeps the answer the moment it arrives.
	cost := 0.0042
	got.Answers = append(got.Answers, analysis.PaidAnswer{Request: "h1", Content: `{"summary":"s"}`, FinishReason: "stop", Model: "grok-4.3-0309",
		Usage:   analysis.Usage{PromptTokens: 100, CachedPromptTokens: 60, CompletionTokens: 20, TotalTokens: 120, ReasoningTokens: 7, CostUSD: &cost},
		Latency: 1500 * time.Millisecond, Attempts: 2, PaidAt: now})
	got.Version++ // every write raises it
	require.NoError(t, s.Save(ctx, got))
	stale := got
	stale.Answers = nil
	assert.ErrorIs(t, s.Save(ctx, stale), reservationdb.ErrNotOwner, "a write that does not raise the version is stale")

	// The lease runs out (run-a died after paying): run-b takes over with
	// the paid answer.
	now = lease.Add(time.Second)
	taken, won, err := s.Claim(ctx, claim("k1", "run-b", now.Add(5*time.Minute)))
	require.NoError(t, err)
	require.True(t, won, "an expired lease is taken over")
	assert.Equal(t, "run-b", taken.Owner)
	require.Len(t, taken.Answers, 1, "what was paid is kept")
	assert.Equal(t, got.Answers[0], taken.Answers[0])
	a, ok := taken.Answer("h1")
	require.True(t, ok)
	assert.Equal(t, 0.0042, *a.Usage.CostUSD)
	assert.ErrorIs(t, s.Complete(ctx, got), reservationdb.ErrNotOwner, "the dead owner lost it")

	taken.Analysis, taken.Status = "2026-11-28T06:06:00.000Z", "ok"
	taken.Version++
	require.NoError(t, s.Complete(ctx, taken))
	done, ok, err := s.Get(ctx, "k1")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, analysis.StateDone, done.State)
	assert.Equal(t, "2026-11-28T06:06:00.000Z", done.Analysis)

	// A done claim is never taken over, lease or not.
	now = now.Add(time.Hour)
	held, won, err = s.Claim(ctx, claim("k1", "run-c", now.Add(5*time.Minute)))
	require.NoError(t, err)
	assert.False(t, won)
	assert.Equal(t, analysis.StateDone, held.State)

	// Released (an outage): the next run claims it at once, answers kept.
	k2, won, err := s.Claim(ctx, claim("k2", "run-d", now.Add(time.Minute)))
	require.NoError(t, err)
	require.True(t, won)
	k2.Answers = []analysis.PaidAnswer{{Request: "h2", Content: "cut", FinishReason: "length", PaidAt: now}}
	k2.Version++
	require.NoError(t, s.Save(ctx, k2))
	k2.Version++
	require.NoError(t, s.Release(ctx, k2))
	again, won, err := s.Claim(ctx, claim("k2", "run-e", now.Add(time.Minute)))
	require.NoError(t, err)
	assert.True(t, won)
	assert.Len(t, again.Answers, 1)
}

// A batch the fan-out planned is left to its queue message: the message
// takes it at once, members and all; any other run only once its lease has
// run out.
func TestClaimAPlannedBatch(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 28, 6, 0, 0, 0, time.UTC)
	s, _, _ := store(t, &now)
	for _, key := range []string{"b1", "b2"} {
		plan := analysis.Claim{Key: key, Kind: analysis.ClaimBatch, DataAsOf: "2026-11-27", Owner: "fanout/run-1", State: analysis.StatePlanned,
			LeaseUntil: now.Add(90 * time.Second), Members: []string{"s1", "s2"}, CreatedAt: now, ExpiresAt: now.Add(analysis.LedgerTTL)}
		got, won, err := s.Claim(ctx, plan)
		require.NoError(t, err)
		require.True(t, won)
		assert.Equal(t, analysis.StatePlanned, got.State)
	}
	portfolio := analysis.Claim{Key: "b1", Kind: analysis.ClaimBatch, Owner: "run-p", LeaseUntil: now.Add(5 * time.Minute)}
	c, won, err := s.Claim(ctx, portfolio)
	require.NoError(t, err)
	assert.False(t, won, "a portfolio waits for the batch's message while the plan is fresh")
	assert.Equal(t, analysis.StatePlanned, c.State)

	c, won, err = s.Claim(ctx, analysis.Claim{Key: "b1", Kind: analysis.ClaimBatch, Owner: "run-m", LeaseUntil: now.Add(5 * time.Minute), Queued: true})
	require.NoError(t, err)
	require.True(t, won, "its message takes it at once")
	assert.Equal(t, []string{"s1", "s2"}, c.Members)
	assert.Equal(t, "run-m", c.Owner)
	assert.Equal(t, analysis.StatePending, c.State)
	_, won, err = s.Claim(ctx, analysis.Claim{Key: "b1", Kind: analysis.ClaimBatch, Owner: "run-m2", LeaseUntil: now.Add(5 * time.Minute), Queued: true})
	require.NoError(t, err)
	assert.False(t, won, "a second delivery of the message waits for the first")

	now = now.Add(91 * time.Second)
	portfolio.Key = "b2"
	c, won, err = s.Claim(ctx, portfolio)
	require.NoError(t, err)
	require.True(t, won, "the plan's lease ran out: the message is late, the portfolio runs the batch")
	assert.Equal(t, analysis.StatePending, c.State)
	assert.Equal(t, []string{"s1", "s2"}, c.Members)
}

// beforeTakeOver is a client that, on a take-over's conditional put (the
// version read), first lets the previous owner write: a late Save or
// Complete between the take-over's read and its put.
type beforeTakeOver struct {
	*dynamodb.Client
	once sync.Once
	late func()
}

func (b *beforeTakeOver) PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	if in.ConditionExpression != nil && strings.Contains(*in.ConditionExpression, "#ver = :ver") {
		b.once.Do(b.late)
	}
	return b.Client.PutItem(ctx, in, opts...)
}

// A take-over is conditional on the version it read: the previous owner's
// write that lands between its read and its put — an answer kept, the
// claim completed — is never overwritten; the take-over reads again.
func TestATakeOverNeverOverwritesALateWrite(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 28, 6, 0, 0, 0, time.UTC)
	_, db, table := store(t, &now)
	clock := func() time.Time { return now }
	for _, late := range []string{"save", "complete"} {
		t.Run(late, func(t *testing.T) {
			old := reservationdb.New(db, table)
			old.Now = clock
			key := "k-" + late
			a, won, err := old.Claim(ctx, claim(key, "run-a", now.Add(-time.Second))) // its lease already over
			require.NoError(t, err)
			require.True(t, won)
			a.Answers = []analysis.PaidAnswer{{Request: "h1", Content: "first", FinishReason: "stop", PaidAt: now}}
			a.Version++
			require.NoError(t, old.Save(ctx, a))
			client := &beforeTakeOver{Client: db, late: func() {
				a.Version++
				switch late {
				case "save":
					a.Answers = append(a.Answers, analysis.PaidAnswer{Request: "h2", Content: "second", FinishReason: "stop", PaidAt: now})
					require.NoError(t, old.Save(ctx, a))
				case "complete":
					a.Analysis, a.Status = "2026-11-28T06:00:01.000Z", "ok"
					require.NoError(t, old.Complete(ctx, a))
				}
			}}
			s := reservationdb.New(client, table)
			s.Now = clock
			got, won, err := s.Claim(ctx, claim(key, "run-b", now.Add(5*time.Minute)))
			require.NoError(t, err)
			stored, _, err := s.Get(ctx, key)
			require.NoError(t, err)
			switch late {
			case "save":
				require.True(t, won, "still expired: taken over after reading again")
				assert.Len(t, got.Answers, 2, "the late answer is kept")
				assert.Len(t, stored.Answers, 2)
				assert.Equal(t, "run-b", stored.Owner)
			case "complete":
				assert.False(t, won, "done meanwhile: not taken")
				assert.Equal(t, analysis.StateDone, stored.State)
				assert.Equal(t, "2026-11-28T06:00:01.000Z", stored.Analysis)
			}
		})
	}
}

// Many runs claiming the same key at once against dynalite: exactly one
// wins, every other sees it as the holder.
func TestClaimConcurrently(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 28, 6, 0, 0, 0, time.UTC)
	s, _, _ := store(t, &now)
	for _, lease := range []time.Time{now.Add(time.Minute), {}} {
		key := fmt.Sprint("same-", lease.IsZero())
		if lease.IsZero() {
			// A planned claim: everyone races to take it over.
			_, _, err := s.Claim(ctx, analysis.Claim{Key: key, Kind: analysis.ClaimBatch, Owner: "fanout", CreatedAt: now, ExpiresAt: now.Add(time.Hour)})
			require.NoError(t, err)
			lease = now.Add(time.Minute)
		}
		var wins atomic.Int32
		var wg sync.WaitGroup
		owners := make([]string, 16)
		for i := range owners {
			wg.Add(1)
			go func() {
				defer wg.Done()
				held, won, err := s.Claim(ctx, claim(key, fmt.Sprintf("run-%d", i), lease))
				if !assert.NoError(t, err) {
					return
				}
				if won {
					wins.Add(1)
				}
				owners[i] = held.Owner
			}()
		}
		wg.Wait()
		assert.Equal(t, int32(1), wins.Load(), key)
		for _, o := range owners {
			assert.Equal(t, owners[0], o, "everyone agrees on the holder")
		}
	}
}

// A long answer is compressed; the largest kept answer, twice, fits the
// item; an item over the budget is refused before it is written.
func TestAnswersFitTheItem(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 28, 6, 0, 0, 0, time.UTC)
	s, db, table := store(t, &now)
	c, _, err := s.Claim(ctx, claim("big", "run-a", now.Add(time.Minute)))
	require.NoError(t, err)
	c.Version++
	// Incompressible enough: every character differs from its neighbour.
	var b strings.Builder
	for i := 0; b.Len() < analysis.MaxKeptAnswerBytes-8; i++ {
		b.WriteRune(rune(0x4E00 + (i*7919)%20000))
	}
	long := b.String()
	for i := range 2 {
		c.Answers = append(c.Answers, analysis.PaidAnswer{Request: fmt.Sprint("h", i), Content: long, FinishReason: "stop", PaidAt: now})
	}
	require.NoError(t, s.Save(ctx, c))
	got, ok, err := s.Get(ctx, "big")
	require.NoError(t, err)
	require.True(t, ok)
	require.Len(t, got.Answers, 2)
	assert.Equal(t, long, got.Answers[1].Content)
	out, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), Key: map[string]types.AttributeValue{"key": &types.AttributeValueMemberS{Value: "big"}}})
	require.NoError(t, err)
	ans := out.Item["answers"].(*types.AttributeValueMemberL).Value[0].(*types.AttributeValueMemberM).Value
	assert.Contains(t, ans, "contentGz", "stored compressed")

	c.Version++
	c.Answers = append(c.Answers, analysis.PaidAnswer{Request: "h3", Content: long, PaidAt: now})
	assert.ErrorIs(t, s.Save(ctx, c), reservationdb.ErrTooManyAnswers, "at most an answer and its repair")
	c.Answers = []analysis.PaidAnswer{{Request: "h1", Content: long + long, PaidAt: now}, {Request: "h2", Content: long + long, PaidAt: now}}
	assert.ErrorIs(t, s.Save(ctx, c), reservationdb.ErrTooLarge, "answers longer than a kept answer can be")
}

func TestScores(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 28, 6, 0, 0, 0, time.UTC)
	s, _, _ := store(t, &now)
	e := analysis.ScoreEntry{Key: "s-aapl", Ticker: "AAPL", DataAsOf: "2026-11-27", Batch: "b1", Data: []byte(`{"symbol":"AAPL"}`), CreatedAt: now, ExpiresAt: now.Add(analysis.LedgerTTL)}
	won, err := s.Assign(ctx, e)
	require.NoError(t, err)
	assert.True(t, won)
	other := e
	other.Batch = "b2"
	won, err = s.Assign(ctx, other)
	require.NoError(t, err)
	assert.False(t, won, "a ticker is planned into one batch")

	v := analysis.TickerScore{Ticker: "AAPL", Score: 70, Signal: "buy", Rationale: "r", Confidence: "high", KeyRisk: "k", Action: "add", Source: analysis.SourceModel}
	other.Verdict = &v
	assert.ErrorIs(t, s.Settle(ctx, other), reservationdb.ErrNotOwner, "only its batch settles it")
	e.Verdict, e.Model = &v, "grok-4.3-0309"
	require.NoError(t, s.Settle(ctx, e))

	keys := []string{"s-aapl", "absent"}
	for i := range 130 { // more than one BatchGetItem
		keys = append(keys, fmt.Sprint("none-", i))
	}
	got, err := s.Scores(ctx, keys)
	require.NoError(t, err)
	require.Len(t, got, 1)
	g := got["s-aapl"]
	assert.Equal(t, analysis.StateDone, g.State)
	assert.Equal(t, v, *g.Verdict)
	assert.Equal(t, "grok-4.3-0309", g.Model)
	assert.Equal(t, `{"symbol":"AAPL"}`, string(g.Data))
	assert.Equal(t, "b1", g.Batch)
}

// An entry stranded pending in a batch (done without it, or its data not
// the ticker's) is planned anew into another batch; one scored, or in
// another batch meanwhile, is left.
func TestReplan(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 28, 6, 0, 0, 0, time.UTC)
	s, _, _ := store(t, &now)
	e := analysis.ScoreEntry{Key: "s-msft", Ticker: "MSFT", DataAsOf: "2026-11-27", Batch: "b1", Data: []byte(`{"symbol":"MSFT"}`), CreatedAt: now, ExpiresAt: now.Add(analysis.LedgerTTL)}
	_, err := s.Assign(ctx, e)
	require.NoError(t, err)
	anew := e
	anew.Batch = "b2"
	won, err := s.Replan(ctx, anew, "b9")
	require.NoError(t, err)
	assert.False(t, won, "not pending in that batch")
	won, err = s.Replan(ctx, anew, "b1")
	require.NoError(t, err)
	assert.True(t, won)
	got, err := s.Scores(ctx, []string{"s-msft"})
	require.NoError(t, err)
	assert.Equal(t, "b2", got["s-msft"].Batch)
	assert.Equal(t, analysis.StatePending, got["s-msft"].State)
	again := e
	again.Batch = "b3"
	won, err = s.Replan(ctx, again, "b1")
	require.NoError(t, err)
	assert.False(t, won, "planned anew once: b2's now")

	v := analysis.TickerScore{Ticker: "MSFT", Score: 40, Signal: "sell", Rationale: "r", Confidence: "low", KeyRisk: "k", Action: "trim", Source: analysis.SourceModel}
	anew.Verdict = &v
	require.NoError(t, s.Settle(ctx, anew))
	won, err = s.Replan(ctx, again, "b2")
	require.NoError(t, err)
	assert.False(t, won, "a scored entry is never planned again")
	won, err = s.Replan(ctx, analysis.ScoreEntry{Key: "absent", Ticker: "X", Batch: "b3", CreatedAt: now, ExpiresAt: now}, "b1")
	require.NoError(t, err)
	assert.False(t, won, "nothing to plan anew")
}

// A reservation written before the ledger (no kind) still reads, as a
// portfolio claim.
func TestAnOldReservationReads(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 28, 6, 0, 0, 0, time.UTC)
	s, db, table := store(t, &now)
	sv := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	_, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: map[string]types.AttributeValue{
		"key": sv("old"), "portfolio": sv("ZSM Seven"), "dataAsOf": sv("2026-11-27"), "owner": sv("x/1"), "state": sv("done"),
		"leaseUntil": &types.AttributeValueMemberN{Value: "1795845900123"}, "analysis": sv("2026-11-28T06:00:00.123Z"), "status": sv("ok"),
		"createdAt": sv("2026-11-28T06:00:00.123Z"), "expiresAt": &types.AttributeValueMemberN{Value: "1796536800"}}})
	require.NoError(t, err)
	c, ok, err := s.Get(ctx, "old")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, analysis.ClaimPortfolio, c.Kind)
	assert.Equal(t, "2026-11-28T06:00:00.123Z", c.Analysis)

	// One left pending by a run that died, before claims had a version:
	// taken over as any other.
	_, err = db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: map[string]types.AttributeValue{
		"key": sv("old-pending"), "kind": sv("batch"), "dataAsOf": sv("2026-11-27"), "owner": sv("x/2"), "state": sv("pending"),
		"leaseUntil": &types.AttributeValueMemberN{Value: "1795845000000"}, "createdAt": sv("2026-11-28T06:00:00.123Z"),
		"expiresAt": &types.AttributeValueMemberN{Value: "1796536800"}}})
	require.NoError(t, err)
	taken, won, err := s.Claim(ctx, claim("old-pending", "run-n", now.Add(time.Minute)))
	require.NoError(t, err)
	assert.True(t, won)
	assert.Equal(t, int64(1), taken.Version)
}
