package analysis

import (
	"fmt"
	"math"
	"slices"
)

// StaleFactor is how much of a score's distance from neutral (50) is kept
// when the data is sessions trading sessions old: 1 − 0.15 per session, at
// least 0.25 (1 session 0.85, 2 0.70, 3 0.55, 4 0.40, 5 or more 0.25).
func StaleFactor(sessions int) float64 {
	if sessions < 1 {
		sessions = 1
	}
	return math.Max(0.25, 1-0.15*float64(sessions))
}

// StaleLowConfidence is the age in sessions from which stale data allows
// only low confidence (below it, at most medium).
const StaleLowConfidence = 3

// Finalize applies the data-quality rules to a portfolio's verdicts (one
// per position, in order), whoever produced them, so that they hold by
// construction rather than by the model's goodwill:
//
//   - a position without market data scores 50 (hold), confidence low,
//     action hold;
//   - a position with stale data has its score pulled toward 50 by
//     StaleFactor(sessions), its confidence capped at medium (low from
//     StaleLowConfidence sessions), and its signal and action follow the
//     new score's band (the action is kept when it still fits).
//
// A changed score keeps the original in RawScore, and the rationale says
// what was changed and why. The result depends only on each ticker's data
// and the last trading day, so a ticker has the same final verdict in every
// portfolio of a night. Finalize is idempotent.
func Finalize(in Input, verdicts []TickerScore) []TickerScore {
	pos := make(map[string]Position, len(in.Positions))
	for _, p := range in.Positions {
		pos[p.Symbol] = p
	}
	out := slices.Clone(verdicts)
	for i := range out {
		t := &out[i]
		p, ok := pos[t.Ticker]
		// A ticker adjusted already (RawScore set) is left as it is.
		if !ok || t.RawScore != nil {
			continue
		}
		switch p.Status {
		case DataMissing:
			adjust(t, 50, LevelLow, ActionHold, "No market data: ")
		case DataStale:
			sessions := max(p.StaleSessions, 1)
			f := StaleFactor(sessions)
			score := int(math.Round(50 + float64(t.Score-50)*f))
			conf := capLevel(t.Confidence, LevelMedium)
			if sessions >= StaleLowConfidence {
				conf = LevelLow
			}
			adjust(t, score, conf, "", fmt.Sprintf("Data is %d session%s old (as of %s): ", sessions, plural(sessions), p.AsOf()))
		}
	}
	return out
}

// adjust sets a ticker's score and confidence, derives its signal and the
// action (action, or when "" the current one if it still fits the band, else
// the band's default), and notes the change in the rationale.
func adjust(t *TickerScore, score int, confidence, action, why string) {
	if action == "" {
		action = t.Action
		if fits := ActionsFor(SignalFor(score)); !slices.Contains(fits, action) {
			action = fits[0]
		}
	}
	changedScore := score != t.Score
	changedConf := confidence != t.Confidence
	changedAction := action != t.Action
	if !changedScore && !changedConf && !changedAction {
		return
	}
	note := why
	if changedScore {
		raw := t.Score
		t.RawScore = &raw
		note += fmt.Sprintf("score pulled toward neutral from %d to %d", raw, score)
		t.Score = score
	} else {
		note += fmt.Sprintf("score %d kept", score)
	}
	if changedConf {
		note += fmt.Sprintf(", confidence %s", confidence)
		t.Confidence = confidence
	}
	t.Signal = SignalFor(t.Score)
	if changedAction {
		note += ", action " + action
		t.Action = action
	}
	t.Rationale += " [" + note + ".]"
}

// capLevel returns l, or ceiling when l is above it.
func capLevel(l, ceiling string) string {
	if slices.Index(Levels, l) > slices.Index(Levels, ceiling) {
		return ceiling
	}
	return l
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
