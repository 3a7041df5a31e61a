package indicators_test

import (
	"reflect"
	"regexp"
	"testing"

	"github.com/zsmseven/backend/pkg/indicators"
)

// Every optional number of Snapshot (a *float64 field) is in Fields exactly
// once, and each entry's Get and Set reach that one field. A new Snapshot
// field missing from Fields fails here, so consumers written against Fields
// cannot silently skip it.
func TestFieldsCoverSnapshot(t *testing.T) {
	typ := reflect.TypeFor[indicators.Snapshot]()
	floatPtr := reflect.TypeFor[*float64]()
	owner := map[string]string{} // Snapshot field → Field.Name
	for i, f := range indicators.Fields {
		if f.Get(indicators.Snapshot{}) != nil {
			t.Errorf("%s: Get of a zero Snapshot is not nil", f.Name)
		}
		var s indicators.Snapshot
		v := float64(i) + 0.5
		f.Set(&s, v)
		rv := reflect.ValueOf(s)
		var set []string
		for j := range typ.NumField() {
			if typ.Field(j).Type == floatPtr && !rv.Field(j).IsNil() {
				set = append(set, typ.Field(j).Name)
			}
		}
		if len(set) != 1 {
			t.Errorf("%s: Set filled Snapshot fields %v, want exactly one", f.Name, set)
			continue
		}
		field := set[0]
		if got := f.Get(s); got != rv.FieldByName(field).Interface().(*float64) || *got != v {
			t.Errorf("%s: Set fills Snapshot.%s but Get does not read it back", f.Name, field)
		}
		if prev, dup := owner[field]; dup {
			t.Errorf("Snapshot.%s is in Fields twice: %s and %s", field, prev, f.Name)
		}
		owner[field] = f.Name
	}
	for j := range typ.NumField() {
		sf := typ.Field(j)
		if sf.Type == floatPtr {
			if _, ok := owner[sf.Name]; !ok {
				t.Errorf("Snapshot.%s is not in indicators.Fields", sf.Name)
			}
		}
	}
	// The stored row contract keeps these attribute names for these fields.
	if owner["RSI"] != "rsi" || owner["MA50"] != "ma50" {
		t.Errorf("RSI is stored as %q and MA50 as %q, the row contract says rsi and ma50", owner["RSI"], owner["MA50"])
	}
}

// Names are stored attribute names: distinct, lowerCamelCase. Labels are
// column headers: distinct, short. Units are the declared ones.
func TestFieldsWellFormed(t *testing.T) {
	attr := regexp.MustCompile(`^[a-z][A-Za-z0-9]*$`)
	names, labels := map[string]bool{}, map[string]bool{}
	units := map[indicators.Unit]bool{indicators.UnitPrice: true, indicators.UnitPercent: true, indicators.UnitIndex: true}
	for _, f := range indicators.Fields {
		if !attr.MatchString(f.Name) {
			t.Errorf("name %q is not lowerCamelCase ASCII", f.Name)
		}
		if names[f.Name] {
			t.Errorf("name %q twice", f.Name)
		}
		if f.Label == "" || len(f.Label) > 10 || labels[f.Label] {
			t.Errorf("%s: label %q is empty, longer than 10 or repeated", f.Name, f.Label)
		}
		if !units[f.Unit] {
			t.Errorf("%s: unit %q is not one of the declared units", f.Name, f.Unit)
		}
		if f.Doc == "" || f.Bars < 1 || f.Get == nil || f.Set == nil {
			t.Errorf("%s: Doc, Bars, Get or Set missing", f.Name)
		}
		names[f.Name], labels[f.Label] = true, true
	}
	if len(indicators.Fields) < 2 || indicators.Fields[0].Name != "rsi" || indicators.Fields[1].Name != "ma50" {
		t.Error("rsi and ma50 must come first, in that order")
	}
}

// The stored names, labels and units, spelled out: renaming a stored name
// orphans every row already written, and a unit change changes what every
// reader prints, so both must be deliberate edits of this table too.
func TestFieldsContract(t *testing.T) {
	want := []struct {
		name, label string
		unit        indicators.Unit
	}{
		{"rsi", "RSI(14)", indicators.UnitIndex},
		{"ma50", "MA50", indicators.UnitPrice},
		{"ma200", "MA200", indicators.UnitPrice},
		{"high52w", "52W HIGH", indicators.UnitPrice},
		{"low52w", "52W LOW", indicators.UnitPrice},
		{"return1mPct", "1M %", indicators.UnitPercent},
		{"return3mPct", "3M %", indicators.UnitPercent},
		{"return12mPct", "12M %", indicators.UnitPercent},
		{"volatility20dPct", "VOL 20D", indicators.UnitPercent},
		{"atr", "ATR(14)", indicators.UnitPrice},
	}
	if len(indicators.Fields) != len(want) {
		t.Fatalf("%d fields, want %d", len(indicators.Fields), len(want))
	}
	for i, w := range want {
		f := indicators.Fields[i]
		if f.Name != w.name || f.Label != w.label || f.Unit != w.unit {
			t.Errorf("Fields[%d] = %s %q %s, want %s %q %s", i, f.Name, f.Label, f.Unit, w.name, w.label, w.unit)
		}
	}
}

// A store writes every present field under its name and reads the row back
// through Set: the round trip through Fields alone gives the same snapshot.
func TestFieldsRoundTrip(t *testing.T) {
	s, err := indicators.Compute(wavyBars(300))
	if err != nil {
		t.Fatal(err)
	}
	row := map[string]float64{}
	for _, f := range indicators.Fields {
		v := f.Get(s)
		if v == nil {
			t.Fatalf("%s absent with 300 bars", f.Name)
		}
		row[f.Name] = *v
	}
	back := indicators.Snapshot{Price: s.Price, AsOf: s.AsOf, Bars: s.Bars}
	for _, f := range indicators.Fields {
		if v, ok := row[f.Name]; ok {
			f.Set(&back, v)
		}
	}
	if !reflect.DeepEqual(back, s) {
		t.Errorf("round trip through Fields:\n got %+v\nwant %+v", back, s)
	}
}

// Lookback is the most bars any field needs: a window of that many sessions
// gives every indicator (and one fewer would lose the 12-month return).
func TestLookbackIsTheMostAnyFieldNeeds(t *testing.T) {
	most := 0
	for _, f := range indicators.Fields {
		most = max(most, f.Bars)
	}
	if most != 253 {
		t.Fatalf("the fields need at most %d bars, want 253 (the 12-month return)", most)
	}
	if got := indicators.Lookback; got != most {
		t.Fatalf("Lookback %d, the fields need at most %d", got, most)
	}
}
