package analysis

import (
	"encoding/json"
	"time"

	"github.com/zsmseven/backend/pkg/retry"
)

// The ledger is what makes paid work durable (analysis-reservations): a
// claim per unit of paid work — a portfolio's overview, a batch of tickers —
// that reserves it before anything is paid and keeps every answer paid for
// it, and a score entry per ticker and data day that names the batch scoring
// it and, once done, holds the score every portfolio reuses.

// Kinds of claim.
const (
	// ClaimPortfolio reserves a portfolio's analysis of one input (its
	// positions' weights, P&L and verdicts) for one model and prompt: the
	// storing of its record.
	ClaimPortfolio = "portfolio"
	// ClaimBatch reserves the scoring of a batch of tickers.
	ClaimBatch = "batch"
	// ClaimOverview reserves the portfolio manager's answer to one input
	// (ManagerInput, no name): portfolios whose inputs are identical share
	// one paid answer.
	ClaimOverview = "overview"
)

// States of a claim and of a score entry.
const (
	// StatePending: the owner is working (until LeaseUntil); for a score
	// entry, its batch has not scored it yet.
	StatePending = "pending"
	// StateDone: the work is stored (a claim names it; a score entry holds
	// the score).
	StateDone = "done"
	// StatePlanned: a batch the fan-out planned for its queue message,
	// nobody working on it yet. Its message takes it at once (Claim.Queued);
	// any other run waits for the message until LeaseUntil, then takes it.
	StatePlanned = "planned"
)

// Claim is one unit of paid work in the ledger. It is pending while its
// owner works, with a lease (the owner's invocation deadline) after which
// another run may take it over — keeping every answer already paid, which
// that run then uses instead of paying again — and done once its result is
// stored. A batch the fan-out planned is StatePlanned until its queue
// message (or, once its lease has run out, any run) takes it.
type Claim struct {
	Key  string
	Kind string
	// Portfolio names the portfolio of a ClaimPortfolio.
	Portfolio string
	DataAsOf  string
	// Owner identifies the run holding it (an invocation id).
	Owner      string
	State      string
	LeaseUntil time.Time
	CreatedAt  time.Time
	// ExpiresAt is the TTL.
	ExpiresAt time.Time
	// Analysis and Status name the stored analysis of a done portfolio
	// claim (its timestamp) and its status.
	Analysis, Status string
	// Members are the score-entry keys of a batch.
	Members []string
	// Answers are the answers paid for this work, in the order paid: at
	// most MaxAnswersPerClaim.
	Answers []PaidAnswer
	// Version changes with every write of the claim: a take-over is
	// conditional on the version it read, so that a late write by the
	// previous owner (an answer kept, the claim completed) is never
	// overwritten. The holder raises it before each of its writes.
	Version int64
	// Queued asks, in a Claim call only (never stored), for a planned
	// batch on behalf of its own queue message: it is taken at once,
	// whatever its lease.
	Queued bool
}

// TakeableBy reports whether the claim request req may take c over at now:
// c is pending or planned and its lease has run out (its owner died, gave
// up, or its message is late), or c is planned and req is its own queue
// message (req.Queued). Every ledger applies this rule.
func (c Claim) TakeableBy(req Claim, now time.Time) bool {
	switch c.State {
	case StatePlanned:
		return req.Queued || c.LeaseUntil.Before(now)
	case StatePending:
		return c.LeaseUntil.Before(now)
	}
	return false
}

// MaxAnswersPerClaim bounds the answers paid for one claim: an answer and
// one repair. A part still without a valid answer then comes from the rules
// (final): the same request would pay for the same mistakes.
const MaxAnswersPerClaim = 2

// Answer returns the stored answer to the request of hash h.
func (c Claim) Answer(h string) (PaidAnswer, bool) {
	for _, a := range c.Answers {
		if a.Request == h {
			return a, true
		}
	}
	return PaidAnswer{}, false
}

// PaidAnswer is one answer the provider was paid for, kept the moment it
// arrived, before anything else could fail: a later run resumes from it
// rather than paying for the same request again.
type PaidAnswer struct {
	// Request is RequestHash of the request it answers.
	Request string
	// Content is the answer as received (possibly empty or cut off).
	Content      string
	FinishReason string
	// Model is the model the provider reported.
	Model             string
	SystemFingerprint string
	Usage             Usage
	Latency           time.Duration
	Attempts          int
	PaidAt            time.Time
	// Oversized: Content holds only the first MaxKeptAnswerBytes of an
	// answer too large to keep; it cannot validate.
	Oversized bool
}

// MaxKeptAnswerBytes bounds the content of a PaidAnswer as stored: a longer
// answer keeps its first bytes and is marked Oversized. Two answers of this
// size fit a ledger item whether or not they compress (a claim holds at most
// MaxAnswersPerClaim); a valid answer of a batch of 40 is a tenth of it.
const MaxKeptAnswerBytes = 160 << 10

// Completion is the answer as the model port returned it, with the error
// its finish reason means: analysis.ErrTruncated for "length", an
// *UnfinishedError for another reason than "stop".
func (a PaidAnswer) Completion() (Completion, error) {
	c := Completion{Content: a.Content, FinishReason: a.FinishReason, Model: a.Model, SystemFingerprint: a.SystemFingerprint,
		Usage: a.Usage, Latency: a.Latency, Attempts: a.Attempts}
	switch a.FinishReason {
	case "stop", "":
		return c, nil
	case "length":
		return c, retry.Permanent(ErrTruncated)
	default:
		return c, retry.Permanent(&UnfinishedError{FinishReason: a.FinishReason})
	}
}

// Paid reports whether a completion was answered by the provider (billed):
// it carries a reported model, usage or a finish reason.
func Paid(c Completion) bool {
	return c.Model != "" || c.Usage.TotalTokens > 0 || c.FinishReason != ""
}

// NewPaidAnswer keeps a paid completion of the request of hash h.
func NewPaidAnswer(h string, c Completion, at time.Time) PaidAnswer {
	a := PaidAnswer{Request: h, Content: c.Content, FinishReason: c.FinishReason, Model: c.Model, SystemFingerprint: c.SystemFingerprint,
		Usage: c.Usage, Latency: c.Latency, Attempts: c.Attempts, PaidAt: at.UTC()}
	if len(a.Content) > MaxKeptAnswerBytes {
		a.Content, a.Oversized = ToValidUTF8Prefix(a.Content, MaxKeptAnswerBytes), true
	}
	return a
}

// RequestHash identifies a request to the model: its model, messages,
// response schema, completion cap and reasoning effort. Two requests with
// the same hash get the same answer, paid once.
func RequestHash(model string, r Request) string {
	b, _ := json.Marshal(struct {
		Model    string
		Messages []Message
		Name     string
		Schema   json.RawMessage
		Cap      int
		Effort   string
	}{model, r.Messages, r.SchemaName, r.Schema, r.MaxCompletionTokens, r.ReasoningEffort})
	return sha(b)
}

// ScoreEntry is one ticker's score of one data day, model and prompt: its
// key is TickerKey's. It is written pending by whoever first plans the
// ticker into a batch (the fan-out, or a portfolio that needs it) and done
// by the batch that scores it; every portfolio then reads the same score.
type ScoreEntry struct {
	Key    string
	Ticker string
	// DataAsOf is the trading date of the data scored.
	DataAsOf string
	// Batch is the key of the batch claim that scores it.
	Batch string
	State string
	// Data is the ticker's data as the ticker analyst reads it
	// (EncodeTicker); the batch's prompt is built from it, after
	// DecodeTicker has validated it again.
	Data []byte
	// Verdict is the score, when done.
	Verdict *TickerScore
	// Model is the model the provider reported for it, or RulesName.
	Model string
	// Reason says why the rules analyst scored it (the model's answers
	// for it did not validate), when it did.
	Reason    string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// ToValidUTF8Prefix is the longest prefix of s of at most n bytes that ends
// on a character boundary.
func ToValidUTF8Prefix(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// LedgerTTL keeps ledger items (claims and score entries) well past the
// nights that could ask for them: their keys include the data date.
const LedgerTTL = 8 * 24 * time.Hour
