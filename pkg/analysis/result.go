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

// The fixed set of signals, strongest buy first. The rules analyst maps
// score bands onto them (see Rules); the model is told to do the same.
const (
	StrongBuy  Signal = "strong_buy"
	Buy        Signal = "buy"
	Hold       Signal = "hold"
	Sell       Signal = "sell"
	StrongSell Signal = "strong_sell"
)

// Signals lists every accepted signal.
var Signals = []Signal{StrongBuy, Buy, Hold, Sell, StrongSell}

// Length caps of the answer's text fields, in characters. The schema cannot
// enforce them, so Parse does.
const (
	MaxSummaryLen   = 2000
	MaxAnalysisLen  = 20000
	MaxRationaleLen = 1000
	// MaxAnswerBytes bounds the raw answer accepted by Parse.
	MaxAnswerBytes = 1 << 20
)

// TickerScore is the validated verdict for one ticker.
type TickerScore struct {
	Ticker string `json:"ticker"`
	// Score is the opportunity score, an integer 0–100 (higher is a better
	// opportunity).
	Score     int    `json:"score"`
	Signal    Signal `json:"signal"`
	Rationale string `json:"rationale"`
}

// Result is a validated analysis: the same shape whether the model or the
// rules analyst produced it.
type Result struct {
	Summary  string        `json:"summary"`
	Analysis string        `json:"analysis"`
	Tickers  []TickerScore `json:"tickers"`
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
// bootstrap runs in its init phase (all three link this package through
// pkg/functions, and only analyzePortfolio validates answers).
var integerRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^-?(0|[1-9][0-9]{0,5})$`) })

// rawTicker is one entry of the answer before validation. Score stays raw so
// 50.5 and "80" can be told apart from 80.
type rawTicker struct {
	Ticker    *string         `json:"ticker"`
	Score     json.RawMessage `json:"score"`
	Signal    *string         `json:"signal"`
	Rationale *string         `json:"rationale"`
}

type rawAnswer struct {
	Summary  *string           `json:"summary"`
	Analysis *string           `json:"analysis"`
	Tickers  []json.RawMessage `json:"tickers"`
}

// Parse decodes and validates the model's answer against the portfolio's
// symbols: one JSON object and nothing after it, no unknown fields, every
// symbol exactly once and no other, an integer score 0–100, a signal from
// Signals, and present, length-capped summary, analysis and rationales.
// The returned Result lists tickers in the order of symbols. Any problem
// gives an *InvalidAnswerError naming all of them.
func Parse(content []byte, symbols []string) (Result, error) {
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
	res.Summary = checkText(raw.Summary, "summary", MaxSummaryLen, add)
	res.Analysis = checkText(raw.Analysis, "analysis", MaxAnalysisLen, add)
	if raw.Tickers == nil {
		add(`field "tickers" is missing`)
	}

	want := make(map[string]bool, len(symbols))
	for _, s := range symbols {
		want[s] = true
	}
	seen := map[string]TickerScore{}
	for i, rt := range raw.Tickers {
		var t rawTicker
		if err := strictDecode(rt, &t); err != nil {
			add("tickers[%d] is not an object with ticker, score, signal and rationale: %s", i, err)
			continue
		}
		if t.Ticker == nil {
			add("tickers[%d] has no ticker", i)
			continue
		}
		name := *t.Ticker
		label := fmt.Sprintf("tickers[%d] (%s)", i, quote(name, 20))
		if !want[name] {
			add("%s: ticker is not one of the portfolio's symbols", label)
			continue
		}
		if _, dup := seen[name]; dup {
			add("%s: ticker appears more than once", label)
			continue
		}
		ts := TickerScore{Ticker: name}
		switch {
		case t.Score == nil:
			add("%s: score is missing", label)
		case !integerRE().Match(bytes.TrimSpace(t.Score)):
			add("%s: score must be an integer from 0 to 100, got %s", label, quote(string(t.Score), 20))
		default:
			if err := json.Unmarshal(t.Score, &ts.Score); err != nil || ts.Score < 0 || ts.Score > 100 {
				add("%s: score must be an integer from 0 to 100, got %s", label, quote(string(t.Score), 20))
			}
		}
		switch {
		case t.Signal == nil:
			add("%s: signal is missing", label)
		case !slices.Contains(Signals, *t.Signal):
			add("%s: signal must be one of %s, got %s", label, strings.Join(Signals, ", "), quote(*t.Signal, 20))
		default:
			ts.Signal = *t.Signal
		}
		ts.Rationale = checkText(t.Rationale, label+" rationale", MaxRationaleLen, add)
		seen[name] = ts
	}
	for _, s := range symbols {
		if _, ok := seen[s]; !ok {
			add("ticker %s is missing: every portfolio symbol must appear exactly once", s)
		}
	}
	if len(problems) > 0 {
		return fail()
	}
	res.Tickers = make([]TickerScore, len(symbols))
	for i, s := range symbols {
		res.Tickers[i] = seen[s]
	}
	return res, nil
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

// quote quotes an untrusted value for a problem message, capped to n bytes.
func quote(s string, n int) string {
	if len(s) > n {
		return fmt.Sprintf("%q…", s[:n])
	}
	return fmt.Sprintf("%q", s)
}
