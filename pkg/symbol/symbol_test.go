package symbol_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/zsmseven/backend/pkg/symbol"
)

func TestNormalizeAccepts(t *testing.T) {
	tests := []struct{ in, want string }{
		{"AAPL", "AAPL"},
		{"aapl", "AAPL"},
		{"BRK.B", "BRK.B"},
		{"brk.b", "BRK.B"},
		// Share classes: Polygon's spelling, whatever separator was typed.
		{"BF-B", "BF.B"},
		{"BRK-B", "BRK.B"},
		{"BRK/B", "BRK.B"},
		{"BRK B", "BRK.B"},
		{" brk b ", "BRK.B"},
		{"brk/a", "BRK.A"},
		{"  msft\t", "MSFT"},
		{"A", "A"},
		{"ABCDEFGHIJ", "ABCDEFGHIJ"}, // exactly 10
		{"X1", "X1"},
	}
	for _, tt := range tests {
		got, err := symbol.Normalize(tt.in)
		if err != nil {
			t.Errorf("Normalize(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("Normalize(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestNormalizeRejects(t *testing.T) {
	tests := []struct {
		in, reason string
	}{
		{"", "empty"},
		{"   ", "empty"},
		{"AAPL\n", `character '\n' not allowed`},
		{"AA  PL", "two separators in a row"},
		{"BRK-", "trailing separator"},
		{"BRK.", "trailing separator"},
		{"BRK/", "trailing separator"},
		{"BRK.-B", "two separators in a row"},
		{"BRK\tB", `character '\t' not allowed`},
		{"<script>", "must start with a letter"},
		{"A<script>", `character '<' not allowed`},
		{"ABCDEFGHIJK", "longer than 10 characters"}, // 11
		{"1ABC", "must start with a letter"},
		{".A", "must start with a letter"},
		{"-A", "must start with a letter"},
		{"AAPL;DROP", `character ';' not allowed`},
		{"ÄPFEL", "must start with a letter"},
		{"AÄ", `character 'Ä' not allowed`},
		{"A\u00a0B", `character '\u00a0' not allowed`},
		// Unicode case mapping turns these into ASCII letters ("ı" → "I",
		// "ſ" → "S"); a validator that upper-cases first would accept them.
		{"aapı", `character 'ı' not allowed`},
		{"ſpy", "must start with a letter"},
		{"K\u212a", "character '\u212a' not allowed"}, // Kelvin sign
		{"A\x00", `character '\x00' not allowed`},
		{"A\xff", "not allowed"}, // invalid UTF-8
	}
	for _, tt := range tests {
		got, err := symbol.Normalize(tt.in)
		if err == nil {
			t.Errorf("Normalize(%q) = %q, want error %q", tt.in, got, tt.reason)
			continue
		}
		if !errors.Is(err, symbol.ErrInvalid) {
			t.Errorf("Normalize(%q): %v does not wrap ErrInvalid", tt.in, err)
		}
		if !strings.Contains(err.Error(), tt.reason) {
			t.Errorf("Normalize(%q) error %q, want reason %q", tt.in, err, tt.reason)
		}
		if strings.ContainsAny(err.Error(), "\n\r") {
			t.Errorf("Normalize(%q) error spans lines: %q", tt.in, err)
		}
	}
}

func TestNormalizeQuotesLongInputBriefly(t *testing.T) {
	_, err := symbol.Normalize(strings.Repeat("A", 5000))
	if err == nil || len(err.Error()) > 120 {
		t.Errorf("error for a 5000-character input: %v (length %d)", err, len(err.Error()))
	}
}

func TestValid(t *testing.T) {
	for in, want := range map[string]bool{"AAPL": true, "BRK.B": true, "aapl": false, " AAPL": false, "": false, "1A": false} {
		if got := symbol.Valid(in); got != want {
			t.Errorf("Valid(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestQuoteEscapesAndBounds(t *testing.T) {
	if got := symbol.Quote("AAPL\n<script>"); got != `"AAPL\n<script>"` {
		t.Errorf("Quote escaped %q", got)
	}
	long := strings.Repeat("x", 100)
	if got := symbol.Quote(long); got != `"`+strings.Repeat("x", 40)+`"…` {
		t.Errorf("Quote of 100 bytes = %q, want 40 bytes and an ellipsis", got)
	}
}

func TestErrorReason(t *testing.T) {
	_, err := symbol.Normalize("BRK-")
	var e *symbol.Error
	if !errors.As(err, &e) || e.Input != "BRK-" || e.Reason != "trailing separator" || symbol.Reason(err) != "trailing separator" {
		t.Fatalf("err = %#v", err)
	}
	if got := err.Error(); got != `invalid ticker symbol "BRK-": trailing separator` {
		t.Errorf("Error() = %q", got)
	}
	if got := symbol.Reason(errors.New("other")); got != "other" {
		t.Errorf("Reason of a plain error = %q", got)
	}
}
