package analysis

import (
	"bytes"
	"encoding/json"
	"regexp"
	"slices"
	"sync"
)

// object is a JSON object whose members keep their order when encoded (a Go
// map's would come out sorted): the response schema lists its properties in
// the order the answer should be written.
type object []member

type member struct {
	name  string
	value any
}

// MarshalJSON encodes the members in order.
func (o object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(m.name)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(m.value)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func str(description string) object {
	return object{{"type", "string"}, {"description", description}}
}

func enum(description string, values []string) object {
	return object{{"type", "string"}, {"enum", append([]string{}, values...)}, {"description", description}}
}

// closed is an object schema with every property required and no other
// allowed.
func closed(props object) object {
	required := make([]string, len(props))
	for i, p := range props {
		required[i] = p.name
	}
	return object{{"type", "object"}, {"properties", props}, {"required", required}, {"additionalProperties", false}}
}

// tickerItem is one ticker's entry of an answer: "ticker" an enum of
// exactly the call's symbols.
func tickerItem(symbols []string) object {
	return closed(object{
		{"ticker", enum("The stock's symbol, exactly as in the data.", symbols)},
		{"score", object{{"type", "integer"}, {"description", "Opportunity score 0-100: 50 neutral, higher a better case to buy or add now, lower a stronger case to reduce."}}},
		{"signal", enum("The band of the score: strong_buy 75-100, buy 60-74, hold 41-59, sell 26-40, strong_sell 0-25.", Signals)},
		{"rationale", str("One to three sentences, at most 600 characters, citing the numbers behind the score.")},
		{"confidence", enum("How well the data supports the score; low when few figures are known.", Levels)},
		{"key_risk", str("The stock's main risk, one phrase of at most 200 characters.")},
		{"action", enum("Consistent with the score: strong_buy add; buy add or hold; hold hold or trim; sell trim or exit; strong_sell exit.", Actions)},
	})
}

// managerSchema is the portfolio manager's response schema for the given
// parts (all of OverviewParts for a first call, the faulty ones for a
// repair), in answer order: "ticker" of a top action an enum of exactly the
// portfolio's symbols.
func managerSchema(parts []string, symbols []string) object {
	all := map[string]member{
		PartSummary: {PartSummary, str("Two to four sentences on the portfolio as a whole, at most 1500 characters: performance against cost, concentration, the main risks.")},
		PartRisk:    {PartRisk, enum("The portfolio's overall risk.", Levels)},
		PartFlags:   {PartFlags, object{{"type", "array"}, {"description", "At most 5 short statements on positions or groups that dominate the weighted value; empty if none."}, {"items", str("One concentration, at most 300 characters.")}}},
		PartTopActions: {PartTopActions, object{{"type", "array"}, {"description", "Exactly three (or as many as there are positions), most important first."}, {"items", closed(object{
			{"ticker", enum("A symbol of the portfolio.", symbols)},
			{"action", enum("An action that fits the stock's signal, chosen with its weight and P&L.", Actions)},
			{"reason", str("Why this action matters now, at most 300 characters.")},
		})}}},
	}
	props := object{}
	for _, p := range OverviewParts {
		if slices.Contains(parts, p) {
			props = append(props, all[p])
		}
	}
	return closed(props)
}

// integerRE matches a JSON integer literal: no fraction, no exponent. It is
// compiled on first use rather than at package initialisation, which every
// bootstrap that links this package runs in its init phase.
var integerRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^-?(0|[1-9][0-9]{0,5})$`) })

// rawTicker is one entry of an answer before validation. Score stays raw so
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
