package analysis

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
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

// Length caps of the answers' text fields, in characters, and of their
// lists. The schema cannot enforce them, so the parsers do.
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
	// MaxAnswerBytes bounds a raw answer the parsers read.
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
	// Action fits the ticker's score band (ActionsFor): the ticker's own
	// action, or the band's other one when the position's size or P&L
	// argues for it.
	Action string `json:"action"`
	Reason string `json:"reason"`
}

// Result is a validated analysis: the same shape whether the model or the
// rules analyst produced its parts.
type Result struct {
	Tickers            []TickerScore `json:"tickers"`
	Summary            string        `json:"summary"`
	OverallRisk        string        `json:"overall_risk"`
	ConcentrationFlags []string      `json:"concentration_flags"`
	TopActions         []TopAction   `json:"top_actions"`
	Analysis           string        `json:"analysis"`
}

// SignalFor maps a score to its band: 75–100 strong_buy, 60–74 buy,
// 41–59 hold, 26–40 sell, 0–25 strong_sell. The system prompts state the
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

// checkText validates a required text field and returns it cleaned
// (CleanText) and trimmed.
func checkText(s *string, field string, maxLen int, add func(string, ...any)) string {
	if s == nil {
		add("%s is missing", field)
		return ""
	}
	t := CleanText(*s)
	switch n := utf8.RuneCountInString(t); {
	case n == 0:
		add("%s is empty", field)
	case n > maxLen:
		add("%s is %d characters long; the limit is %d", field, n, maxLen)
	}
	return t
}

// CleanText is a model's text fit to store and print: every run of control
// characters (a newline, a terminal escape) and bidirectional-text controls
// becomes one space, and the ends are trimmed. The text is the model's; a
// character that could move a terminal's cursor or reorder what is shown is
// not.
func CleanText(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	gap := false
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			gap = true
			continue
		}
		if gap {
			b.WriteByte(' ')
			gap = false
		}
		b.WriteRune(r)
	}
	return strings.TrimSpace(b.String())
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
		return fmt.Sprintf("%q…", ToValidUTF8Prefix(s, n))
	}
	return fmt.Sprintf("%q", s)
}

// capRunes cuts s to at most n characters, ending with "…" when cut.
func capRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}
