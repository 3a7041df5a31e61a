package analysis

import (
	"bytes"
	"encoding/json"
)

// object is a JSON object whose members keep their order when encoded (a Go
// map's would come out sorted): the response schema lists its properties in
// the order the answer should be written, tickers first and the long
// analysis text last.
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

// responseSchema is the JSON schema of the answer of a call of kind k for
// these symbols: "ticker" is an enum of exactly them, signals, actions and
// levels enums, every object closed with every field required, properties
// in answer order (tickers, then the portfolio's summary, risk, flags and
// top actions, then the analysis text) and described. Bounds the schema
// cannot guarantee are checked by ParseCall.
func responseSchema(k Kind, symbols []string) object {
	ticker := closed(object{
		{"ticker", enum("The position's symbol, exactly as in the data.", symbols)},
		{"score", object{{"type", "integer"}, {"description", "Opportunity score 0-100: 50 neutral, higher a better case to add now, lower a stronger case to reduce."}}},
		{"signal", enum("The band of the score: strong_buy 75-100, buy 60-74, hold 41-59, sell 26-40, strong_sell 0-25.", Signals)},
		{"rationale", str("One to three sentences, at most 600 characters, citing the numbers behind the score.")},
		{"confidence", enum("How well the data supports the score; low when the data is missing.", Levels)},
		{"key_risk", str("The main risk of the position, one phrase of at most 200 characters.")},
		{"action", enum("Consistent with the score: strong_buy add; buy add or hold; hold hold or trim; sell trim or exit; strong_sell exit.", Actions)},
	})
	tickers := member{"tickers", object{{"type", "array"}, {"description", "Exactly one entry per position of the data, no other."}, {"items", ticker}}}
	topAction := closed(object{
		{"ticker", str("A symbol of the portfolio.")},
		{"action", enum("That ticker's own action.", Actions)},
		{"reason", str("Why this action matters now, at most 300 characters.")},
	})
	portfolio := []member{
		{"summary", str("Two to four sentences on the portfolio as a whole, at most 1500 characters.")},
		{"overall_risk", enum("The portfolio's overall risk.", Levels)},
		{"concentration_flags", object{{"type", "array"}, {"description", "At most 5 short statements on positions or groups that dominate the weighted value; empty if none."},
			{"items", str("One concentration, at most 300 characters.")}}},
		{"top_actions", object{{"type", "array"}, {"description", "Exactly three (or as many as there are positions), most important first."}, {"items", topAction}}},
		{"analysis", str("A fuller analysis, at most 6000 characters: performance against cost, trend and momentum, concentration, main risks.")},
	}
	switch k {
	case KindTickers:
		return closed(object{tickers})
	case KindPortfolio:
		return closed(object(portfolio))
	default:
		return closed(append(object{tickers}, portfolio...))
	}
}

// ResponseSchema is the encoded schema of a complete (KindFull) answer for
// these symbols.
func ResponseSchema(symbols []string) json.RawMessage {
	b, _ := json.Marshal(responseSchema(KindFull, symbols))
	return b
}
