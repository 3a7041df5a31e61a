package analysis

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
)

// Signal is the recommendation attached to a ticker's score.
type Signal = string

// The fixed set of signals, strongest buy first. A signal is a function of
// the score (SignalFor): the model is told the bands and an answer whose
// signal is off its score's band is rejected.
const (
	StrongBuy  Signal = "strong_buy"
	Buy        Signal = "buy"
	Hold       Signal = "hold"
	Sell       Signal = "sell"
	StrongSell Signal = "strong_sell"
)

// Signals lists every accepted signal.
var Signals = []Signal{StrongBuy, Buy, Hold, Sell, StrongSell}

// Actions a portfolio manager can take on a position.
const (
	ActionAdd  = "add"
	ActionHold = "hold"
	ActionTrim = "trim"
	ActionExit = "exit"
)

// Actions lists every accepted action.
var Actions = []string{ActionAdd, ActionHold, ActionTrim, ActionExit}

// Levels of a ticker's confidence and of the portfolio's overall risk.
const (
	LevelLow    = "low"
	LevelMedium = "medium"
	LevelHigh   = "high"
)

// Levels lists them, lowest first.
var Levels = []string{LevelLow, LevelMedium, LevelHigh}

// Length caps of the answer's text fields, in characters, and of its lists.
// The schema cannot enforce them, so Parse does.
const (
	MaxSummaryLen   = 1500
	MaxAnalysisLen  = 6000
	MaxRationaleLen = 600
	MaxKeyRiskLen   = 200
	MaxReasonLen    = 300
	MaxFlagLen      = 300
	MaxFlags        = 5
	// TopActions is how many top actions a portfolio gets (fewer when it
	// has fewer positions).
	TopActions = 3
	// MaxAnswerBytes bounds the raw answer accepted by Parse.
	MaxAnswerBytes = 1 << 20
)

// TickerScore is the validated verdict for one ticker.
type TickerScore struct {
	Ticker string `json:"ticker"`
	// Score is the opportunity score, an integer 0–100 (higher is a better
	// opportunity).
	Score int `json:"score"`
	// Signal is SignalFor(Score).
	Signal    Signal `json:"signal"`
	Rationale string `json:"rationale"`
	// Confidence is low, medium or high; low whenever the data is missing.
	Confidence string `json:"confidence"`
	KeyRisk    string `json:"key_risk"`
	// Action is one of ActionsFor(Signal).
	Action string `json:"action"`
	// RawScore is the score before Finalize pulled it toward neutral for
	// missing or stale data; nil when it was not adjusted.
	RawScore *int `json:"raw_score,omitempty"`
	// Source is SourceModel or SourceRules.
	Source string `json:"source,omitempty"`
}

// Who produced a ticker's verdict.
const (
	SourceModel = "model"
	SourceRules = "rules"
)

// TopAction is one of the portfolio's most important actions.
type TopAction struct {
	Ticker string `json:"ticker"`
	// Action is the ticker's own action.
	Action string `json:"action"`
	Reason string `json:"reason"`
}

// Result is a validated analysis: the same shape whether the model or the
// rules analyst produced it.
type Result struct {
	Tickers            []TickerScore `json:"tickers"`
	Summary            string        `json:"summary"`
	OverallRisk        string        `json:"overall_risk"`
	ConcentrationFlags []string      `json:"concentration_flags"`
	TopActions         []TopAction   `json:"top_actions"`
	Analysis           string        `json:"analysis"`
}

// SignalFor maps a score to its band: 75–100 strong_buy, 60–74 buy,
// 41–59 hold, 26–40 sell, 0–25 strong_sell. The system prompt states the
// same bands.
func SignalFor(score int) Signal {
	switch {
	case score >= 75:
		return StrongBuy
	case score >= 60:
		return Buy
	case score >= 41:
		return Hold
	case score >= 26:
		return Sell
	default:
		return StrongSell
	}
}

// ActionsFor lists the actions consistent with a signal, the default first:
// strong_buy add; buy add or hold; hold hold or trim; sell trim or exit;
// strong_sell exit.
func ActionsFor(s Signal) []string {
	switch s {
	case StrongBuy:
		return []string{ActionAdd}
	case Buy:
		return []string{ActionAdd, ActionHold}
	case Hold:
		return []string{ActionHold, ActionTrim}
	case Sell:
		return []string{ActionTrim, ActionExit}
	default:
		return []string{ActionExit}
	}
}

// InvalidAnswerError lists everything wrong with a model's answer, in words
// fit to show the model in a repair request.
type InvalidAnswerError struct {
	Problems []string
}

func (e *InvalidAnswerError) Error() string {
	return "invalid answer: " + strings.Join(e.Problems, "; ")
}

// ErrInvalidAnswer is matched by every *InvalidAnswerError via errors.Is.
var ErrInvalidAnswer = errors.New("invalid answer")

// Is makes errors.Is(err, ErrInvalidAnswer) true.
func (e *InvalidAnswerError) Is(target error) bool { return target == ErrInvalidAnswer }

// integerRE matches a JSON integer literal: no fraction, no exponent. It is
// compiled on first use rather than at package initialisation, which every
// bootstrap that links this package runs in its init phase.
var integerRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^-?(0|[1-9][0-9]{0,5})$`) })

// rawTicker is one entry of the answer before validation. Score stays raw so
// 50.5 and "80" can be told apart from 80.
type rawTicker struct {
	Ticker     *string         `json:"ticker"`
	Score      json.RawMessage `json:"score"`
	Signal     *string         `json:"signal"`
	Rationale  *string         `json:"rationale"`
	Confidence *string         `json:"confidence"`
	KeyRisk    *string         `json:"key_risk"`
	Action     *string         `json:"action"`
}

type rawTopAction struct {
	Ticker *string `json:"ticker"`
	Action *string `json:"action"`
	Reason *string `json:"reason"`
}

// rawAnswer holds the fields of every kind of answer; which must be present
// depends on the call (Kind).
type rawAnswer struct {
	Tickers            []json.RawMessage `json:"tickers"`
	Summary            *string           `json:"summary"`
	OverallRisk        *string           `json:"overall_risk"`
	ConcentrationFlags []json.RawMessage `json:"concentration_flags"`
	TopActions         []json.RawMessage `json:"top_actions"`
	Analysis           *string           `json:"analysis"`
}

// Parse decodes and validates a complete answer (a KindFull call) for the
// portfolio's symbols. See ParseCall.
func Parse(content []byte, symbols []string) (Result, error) {
	return parse(content, KindFull, symbols, symbols, nil)
}

// ParseCall decodes and validates the model's answer to c: one JSON object
// and nothing after it, no unknown fields, the fields of c's kind and no
// others. Tickers: every symbol of the call exactly once and no other, an
// integer score 0–100, the signal of its band, an action consistent with
// it, a confidence level, and present, length-capped key risk and
// rationale. Portfolio part: summary, overall risk, at most MaxFlags
// concentration flags, exactly min(3, positions) top actions on distinct
// portfolio tickers with each ticker's own action, and the analysis text.
// The returned Result lists tickers in the order of the call's symbols. Any
// problem gives an *InvalidAnswerError naming all of them.
func ParseCall(c Call, content []byte) (Result, error) {
	return parse(content, c.Kind, c.Symbols, c.portfolioSymbols, c.actions)
}

func parse(content []byte, kind Kind, symbols, all []string, actions map[string]string) (Result, error) {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	fail := func() (Result, error) { return Result{}, &InvalidAnswerError{Problems: problems} }

	if len(content) > MaxAnswerBytes {
		add("the answer is longer than %d bytes", MaxAnswerBytes)
		return fail()
	}
	if !utf8.Valid(content) {
		add("the answer is not valid UTF-8")
		return fail()
	}
	var raw rawAnswer
	if err := strictDecode(content, &raw); err != nil {
		add("the answer is not one JSON object of the required schema: %s", err)
		return fail()
	}
	res := Result{}
	wantTickers := kind != KindPortfolio
	wantPortfolio := kind != KindTickers
	if wantTickers {
		if raw.Tickers == nil {
			add(`field "tickers" is missing`)
		}
		res.Tickers = parseTickers(raw.Tickers, symbols, add)
	} else if raw.Tickers != nil {
		add(`field "tickers" is not part of this answer: the positions were rated already`)
	}
	if !wantPortfolio {
		for _, f := range []struct {
			name    string
			present bool
		}{{"summary", raw.Summary != nil}, {"overall_risk", raw.OverallRisk != nil}, {"concentration_flags", raw.ConcentrationFlags != nil},
			{"top_actions", raw.TopActions != nil}, {"analysis", raw.Analysis != nil}} {
			if f.present {
				add("field %q is not part of this answer: only the positions are rated here", f.name)
			}
		}
	} else {
		if kind == KindFull {
			actions = map[string]string{}
			for _, t := range res.Tickers {
				actions[t.Ticker] = t.Action
			}
		}
		res.Summary = checkText(raw.Summary, "summary", MaxSummaryLen, add)
		res.OverallRisk = checkEnum(raw.OverallRisk, "overall_risk", Levels, add)
		res.ConcentrationFlags = parseFlags(raw.ConcentrationFlags, add)
		res.TopActions = parseTopActions(raw.TopActions, all, actions, add)
		res.Analysis = checkText(raw.Analysis, "analysis", MaxAnalysisLen, add)
	}
	if len(problems) > 0 {
		return fail()
	}
	return res, nil
}

func parseTickers(entries []json.RawMessage, symbols []string, add func(string, ...any)) []TickerScore {
	want := make(map[string]bool, len(symbols))
	for _, s := range symbols {
		want[s] = true
	}
	seen := map[string]TickerScore{}
	for i, rt := range entries {
		var t rawTicker
		if err := strictDecode(rt, &t); err != nil {
			add("tickers[%d] is not an object with ticker, score, signal, rationale, confidence, key_risk and action: %s", i, err)
			continue
		}
		if t.Ticker == nil {
			add("tickers[%d] has no ticker", i)
			continue
		}
		name := *t.Ticker
		label := fmt.Sprintf("tickers[%d] (%s)", i, quote(name, 20))
		if !want[name] {
			add("%s: ticker is not one of the symbols to rate", label)
			continue
		}
		if _, dup := seen[name]; dup {
			add("%s: ticker appears more than once", label)
			continue
		}
		ts := TickerScore{Ticker: name}
		scored := false
		switch {
		case t.Score == nil:
			add("%s: score is missing", label)
		case !integerRE().Match(bytes.TrimSpace(t.Score)):
			add("%s: score must be an integer from 0 to 100, got %s", label, quote(string(t.Score), 20))
		default:
			if err := json.Unmarshal(t.Score, &ts.Score); err != nil || ts.Score < 0 || ts.Score > 100 {
				add("%s: score must be an integer from 0 to 100, got %s", label, quote(string(t.Score), 20))
			} else {
				scored = true
			}
		}
		ts.Signal = checkEnum(t.Signal, label+" signal", Signals, add)
		if scored && ts.Signal != "" && ts.Signal != SignalFor(ts.Score) {
			add("%s: signal %s does not match score %d, whose band is %s", label, ts.Signal, ts.Score, SignalFor(ts.Score))
		}
		ts.Action = checkEnum(t.Action, label+" action", Actions, add)
		if scored && ts.Action != "" && !slices.Contains(ActionsFor(SignalFor(ts.Score)), ts.Action) {
			add("%s: action %s does not fit score %d (%s): use %s", label, ts.Action, ts.Score, SignalFor(ts.Score),
				strings.Join(ActionsFor(SignalFor(ts.Score)), " or "))
		}
		ts.Confidence = checkEnum(t.Confidence, label+" confidence", Levels, add)
		ts.KeyRisk = checkText(t.KeyRisk, label+" key_risk", MaxKeyRiskLen, add)
		ts.Rationale = checkText(t.Rationale, label+" rationale", MaxRationaleLen, add)
		seen[name] = ts
	}
	for _, s := range symbols {
		if _, ok := seen[s]; !ok {
			add("ticker %s is missing: every symbol to rate must appear exactly once", s)
		}
	}
	out := make([]TickerScore, 0, len(symbols))
	for _, s := range symbols {
		if ts, ok := seen[s]; ok {
			out = append(out, ts)
		}
	}
	return out
}

func parseFlags(entries []json.RawMessage, add func(string, ...any)) []string {
	if entries == nil {
		add(`field "concentration_flags" is missing (an empty list when nothing is concentrated)`)
		return nil
	}
	if len(entries) > MaxFlags {
		add("concentration_flags has %d entries; at most %d", len(entries), MaxFlags)
	}
	out := []string{}
	for i, e := range entries {
		var s *string
		if err := json.Unmarshal(e, &s); err != nil || s == nil {
			add("concentration_flags[%d] is not a string", i)
			continue
		}
		out = append(out, checkText(s, fmt.Sprintf("concentration_flags[%d]", i), MaxFlagLen, add))
	}
	return out
}

func parseTopActions(entries []json.RawMessage, all []string, actions map[string]string, add func(string, ...any)) []TopAction {
	want := min(TopActions, len(all))
	if entries == nil {
		add(`field "top_actions" is missing`)
		return nil
	}
	if len(entries) != want {
		add("top_actions has %d entries; give exactly %d", len(entries), want)
	}
	held := make(map[string]bool, len(all))
	for _, s := range all {
		held[s] = true
	}
	seen := map[string]bool{}
	var out []TopAction
	for i, e := range entries {
		var r rawTopAction
		if err := strictDecode(e, &r); err != nil {
			add("top_actions[%d] is not an object with ticker, action and reason: %s", i, err)
			continue
		}
		label := fmt.Sprintf("top_actions[%d]", i)
		ta := TopAction{}
		switch {
		case r.Ticker == nil:
			add("%s has no ticker", label)
		case !held[*r.Ticker]:
			add("%s: ticker %s is not one of the portfolio's symbols", label, quote(*r.Ticker, 20))
		case seen[*r.Ticker]:
			add("%s: ticker %s appears more than once", label, *r.Ticker)
		default:
			ta.Ticker = *r.Ticker
			seen[ta.Ticker] = true
		}
		ta.Action = checkEnum(r.Action, label+" action", Actions, add)
		if want, ok := actions[ta.Ticker]; ok && ta.Ticker != "" && ta.Action != "" && ta.Action != want {
			add("%s: action %s differs from the action %s given for %s", label, ta.Action, want, ta.Ticker)
		}
		ta.Reason = checkText(r.Reason, label+" reason", MaxReasonLen, add)
		out = append(out, ta)
	}
	return out
}

// strictDecode decodes exactly one JSON value into v, rejecting unknown
// fields and anything after the value.
func strictDecode(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("unexpected data after the JSON object")
	}
	return nil
}

// checkText validates a required text field and returns it trimmed.
func checkText(s *string, field string, maxLen int, add func(string, ...any)) string {
	if s == nil {
		add("%s is missing", field)
		return ""
	}
	t := strings.TrimSpace(*s)
	switch n := utf8.RuneCountInString(t); {
	case n == 0:
		add("%s is empty", field)
	case n > maxLen:
		add("%s is %d characters long; the limit is %d", field, n, maxLen)
	}
	return t
}

// checkEnum validates a required field whose value is one of allowed.
func checkEnum(s *string, field string, allowed []string, add func(string, ...any)) string {
	switch {
	case s == nil:
		add("%s is missing", field)
	case !slices.Contains(allowed, *s):
		add("%s must be one of %s, got %s", field, strings.Join(allowed, ", "), quote(*s, 20))
	default:
		return *s
	}
	return ""
}

// quote quotes an untrusted value for a problem message, capped to n bytes.
func quote(s string, n int) string {
	if len(s) > n {
		return fmt.Sprintf("%q…", s[:n])
	}
	return fmt.Sprintf("%q", s)
}
