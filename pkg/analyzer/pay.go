package analyzer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/zsmseven/backend/pkg/analysis"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/retry"
)

// held is a claim this run holds, with the answers paid for it so far.
type held struct {
	mu sync.Mutex
	c  analysis.Claim
	// need are score-entry keys a waiting portfolio knows to be a batch's
	// members (a claim may predate them, or be missing).
	need []string
	// readOnly: a claim another run completed, read for its answers; an
	// answer it lacks is paid but not written to it.
	readOnly bool
}

// claim is a copy of the claim as held.
func (h *held) claim() analysis.Claim {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.c
	c.Answers = slices.Clone(c.Answers)
	return c
}

// next is the claim to write next: a copy, its version raised — every write
// of a claim changes its version, so that a take-over that read it before
// fails (analysis.Claim.Version).
func (h *held) next() analysis.Claim {
	h.mu.Lock()
	h.c.Version++
	h.mu.Unlock()
	return h.claim()
}

// spend is what one piece of work paid: its calls and their audit.
type spend struct {
	mu          sync.Mutex
	usage       analysis.Usage
	calls       int
	attempts    int
	latency     time.Duration
	model       string
	fingerprint string
}

func (sp *spend) add(c analysis.Completion, paid bool) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.attempts += c.Attempts
	sp.latency += c.Latency
	if !paid {
		return
	}
	sp.calls++
	sp.usage = sp.usage.Add(c.Usage)
	if c.Model != "" {
		sp.model = c.Model
	}
	if c.SystemFingerprint != "" {
		sp.fingerprint = c.SystemFingerprint
	}
}

// reused notes an answer paid before: its model, not its cost.
func (sp *spend) reused(c analysis.Completion) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if c.Model != "" {
		sp.model = c.Model
	}
}

// pay asks the model once for req under the claim h — unless an answer to
// the same request is kept in the claim already (paid by this run or by one
// that died, ran out of time or was handed back), which is then used and
// nothing is paid. A paid answer is kept in the claim and saved to the
// ledger at once, before anything else can fail, even when the invocation's
// context is ending: a later run resumes from it. req gets the ceiling of
// its completion cap and the reasoning effort here.
func (s *Service) pay(ctx context.Context, h *held, req analysis.Request, sp *spend) (analysis.Completion, error) {
	req.MaxCompletionTokens = min(s.o.MaxCompletionTokens, req.MaxCompletionTokens)
	req.ReasoningEffort = s.o.ReasoningEffort
	hash := analysis.RequestHash(s.o.LLM.Model(), req)
	h.mu.Lock()
	kept, ok := h.c.Answer(hash)
	spent := len(h.c.Answers) >= analysis.MaxAnswersPerClaim
	h.mu.Unlock()
	if !ok && spent {
		return analysis.Completion{}, fmt.Errorf("%s: %w", what(h.c), errAnswersSpent)
	}
	if ok {
		s.o.Metrics.Add(deploy.LLMAnswersReused, 1)
		s.o.Logger.InfoContext(ctx, "paid answer reused from the ledger: not paid again", "claim", h.c.Key[:12], "kind", h.c.Kind, "paidAt", kept.PaidAt)
		comp, err := kept.Completion()
		sp.reused(comp)
		return comp, err
	}
	comp, err := s.o.LLM.Complete(ctx, req)
	paid := analysis.Paid(comp)
	sp.add(comp, paid)
	if !paid {
		return comp, err
	}
	s.o.Metrics.Add(deploy.LLMCalls, 1)
	s.o.Metrics.Add(deploy.LLMPromptTokens, float64(comp.Usage.PromptTokens))
	s.o.Metrics.Add(deploy.LLMCachedTokens, float64(comp.Usage.CachedPromptTokens))
	s.o.Metrics.Add(deploy.LLMCompletionTokens, float64(comp.Usage.CompletionTokens))
	s.o.Metrics.Add(deploy.LLMReasoningTokens, float64(comp.Usage.ReasoningTokens))
	if comp.Usage.CostUSD != nil {
		s.o.Metrics.Add(deploy.LLMCostUSD, *comp.Usage.CostUSD)
	}
	h.mu.Lock()
	h.c.Answers = append(h.c.Answers, analysis.NewPaidAnswer(hash, comp, s.o.Now()))
	h.mu.Unlock()
	if h.readOnly {
		return comp, err
	}
	// Kept even if the invocation is ending: what was paid is not lost to
	// a deadline.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), saveTimeout)
	defer cancel()
	if serr := s.o.Ledger.Save(sctx, h.next()); serr != nil {
		s.o.Logger.ErrorContext(ctx, "paid answer not kept in the ledger: used, but a later run would pay for it again", "claim", h.c.Key[:12],
			"kind", h.c.Kind, "error", serr)
	}
	return comp, err
}

// errAnswersSpent: a claim holds analysis.MaxAnswersPerClaim answers and
// none answers the request: nothing more is paid for it (final).
var errAnswersSpent = fmt.Errorf("the answers of its claim (%d) are spent: not asked again", analysis.MaxAnswersPerClaim)

// saveTimeout bounds the write of a paid answer, which outlives the
// invocation's context.
const saveTimeout = 10 * time.Second

// claim takes c (its key and kind set by the caller) for this run, with
// the invocation's deadline as the lease. When another run holds it,
// pending, this one waits — polling every WaitPoll — until that run is done
// (won is false and the returned claim is the done one), releases it or
// its lease runs out (this one takes it over, with what it had paid); it
// gives up with ErrBusy when less than MinWork of its own invocation would
// be left.
func (s *Service) claim(ctx context.Context, c analysis.Claim) (*held, bool, error) {
	c = s.leased(ctx, c)
	waited := false
	for {
		got, won, err := s.o.Ledger.Claim(ctx, c)
		if err != nil {
			return nil, false, fmt.Errorf("claim %s: %w", what(c), err)
		}
		if won || got.State == analysis.StateDone {
			if waited {
				s.o.Logger.InfoContext(ctx, "claim of another run settled", "claim", what(c), "won", won)
			}
			return &held{c: got}, won, nil
		}
		now := s.o.Now()
		// Look again every WaitPoll, or just after the lease runs out.
		wait := s.o.WaitPoll
		if until := got.LeaseUntil.Sub(now); until < wait {
			wait = max(until, 0) + 10*time.Millisecond
		}
		if dl, ok := ctx.Deadline(); ok && dl.Sub(now.Add(wait)) < s.o.MinWork {
			return nil, false, retry.Transient(fmt.Errorf("%s: %w (owner %s, lease until %s)", what(c), ErrBusy,
				got.Owner, got.LeaseUntil.UTC().Format(time.RFC3339)), 0)
		}
		if !waited {
			s.o.Logger.InfoContext(ctx, "another run holds the claim: waiting", "claim", what(c), "owner", got.Owner,
				"leaseUntil", got.LeaseUntil.UTC().Format(time.RFC3339))
			waited = true
		}
		if err := s.o.Sleep(ctx, wait); err != nil {
			return nil, false, fmt.Errorf("wait for the claim of %s: %w", what(c), err)
		}
	}
}

// leased is c to be held by this run until its invocation's deadline.
func (s *Service) leased(ctx context.Context, c analysis.Claim) analysis.Claim {
	now := s.o.Now()
	c.Owner = s.owner(ctx)
	c.LeaseUntil = now.Add(s.o.Lease)
	if dl, ok := ctx.Deadline(); ok {
		c.LeaseUntil = dl
	}
	c.CreatedAt, c.ExpiresAt = now, now.Add(analysis.LedgerTTL)
	return c
}

func what(c analysis.Claim) string {
	if c.Kind == analysis.ClaimPortfolio {
		return fmt.Sprintf("the analysis of %q", c.Portfolio)
	}
	return "ticker batch " + c.Key[:min(12, len(c.Key))]
}

// owner names this invocation as a claim's holder: the Lambda request id
// (unique per invocation, also for a redelivered message) plus random
// digits.
func (s *Service) owner(ctx context.Context) string {
	id := "local"
	if lc, ok := lambdacontext.FromContext(ctx); ok && lc.AwsRequestID != "" {
		id = lc.AwsRequestID
	}
	return id + "/" + randomHex(6)
}

// complete and release settle this run's claim; a failure is logged, not
// returned: the work is stored (or not) either way, and a claim left
// pending expires with its lease, its paid answers kept.
func (s *Service) complete(ctx context.Context, h *held) {
	if err := s.o.Ledger.Complete(ctx, h.next()); err != nil {
		s.o.Logger.WarnContext(ctx, "could not mark the claim done", "claim", what(h.c), "error", err)
	}
}

func (s *Service) release(ctx context.Context, h *held) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), saveTimeout)
	defer cancel()
	if err := s.o.Ledger.Release(rctx, h.next()); err != nil {
		s.o.Logger.WarnContext(ctx, "could not release the claim", "claim", what(h.c), "error", err)
	}
}

// failure says why a call gave no usable answer, and whether that is worth
// another try by a later run (no answer at all: the API failed) or final
// (an answer that ends the same way when asked again).
type failure struct {
	reason string
	// final: the model answered and the answer cannot be used (filtered,
	// cut at the ceiling, invalid after its repair); a later run would pay
	// for the same.
	final bool
}

func apiFailure(prefix string, err error) failure {
	kind := "transient, retries exhausted"
	if retry.IsPermanent(err) {
		kind = "permanent"
	}
	return failure{reason: capText(fmt.Sprintf("%s (%s): %v", prefix, kind, err), 1000)}
}

// afterRepair is the failure of a repair whose answer still left faulty
// parts (problems), or was cut at its cap: final, as the same request would
// pay for the same.
func afterRepair(problems []string, truncated bool) *failure {
	why := "answer invalid after repair: " + strings.Join(problems, "; ")
	if truncated {
		why = "the repaired answer was cut off at its completion cap"
	}
	return &failure{reason: capText(why, 1000), final: true}
}

const truncatedProblem = "the answer was cut off at the completion token limit (finish_reason \"length\"): keep the rationales and texts shorter"

// classify sorts a completion's error: a cut answer (repair with a larger
// cap), a refused one (final), an API failure (not final), or none.
func classify(err error) (truncated bool, f *failure) {
	switch {
	case err == nil:
		return false, nil
	case errors.Is(err, analysis.ErrTruncated):
		return true, nil
	case errors.Is(err, errAnswersSpent):
		return false, &failure{reason: err.Error(), final: true}
	case errors.Is(err, analysis.ErrUnfinished):
		return false, &failure{reason: capText("the model did not answer: "+err.Error()+"; not repaired (the same request would end the same way)", 1000), final: true}
	default:
		f := apiFailure("model request failed", err)
		return false, &f
	}
}

func capText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return analysis.ToValidUTF8Prefix(s, n) + "…"
}
