// Package fakexai is a local HTTP server speaking xAI's chat completions wire
// format, for contract, end-to-end, fault and benchmark runs. Each call takes
// the next scripted Reply (status, headers, body, delay); when the script
// runs out the last Reply repeats. Every request is recorded, and every
// answer paid for (a 200 written whole, or cut after the work was done) is
// counted with its usage: Paid, Usage, RepeatedPaid (an answer paid again:
// the same request, or tickers scored before), TickersPaidAgain.
//
// It refuses what xAI refuses, whatever the script says: a message with
// empty content (400 "An empty message was provided", EmptyMessageBody) and
// reasoning_effort for a model listed in NoReasoningEffort (400, as the Grok
// 4 models before 4.3 answer). Generated replies (Generate) answer any
// analysis request validly, as a model would — the ticker analyst's, the
// portfolio manager's (whole or a repair of some parts), and the one-call
// design before them — with usage in xAI's shape: reasoning tokens in
// usage.completion_tokens_details, outside the completion cap, and cached
// prompt tokens in usage.prompt_tokens_details (the leading messages seen
// before under the same x-grok-conv-id). Faults: slow answers (Slow, past a
// deadline), resets mid-body, answers cut off or filtered, answers edited
// to break one part and fix another (Generator.Edit), an answer billed and
// never delivered (Reply.Drop), and a hook after an answer is delivered
// (AfterAnswer: a test kills the client there).
//
//	srv := fakexai.New(t, fakexai.Status(500, `{"error":"boom"}`), fakexai.Answer(`{"summary":...}`))
//	client := xai.New(xai.Options{URL: srv.URL, APIKey: fakexai.Key})
//	...
//	srv.Calls()        // 2
//	srv.Requests()[1]  // the decoded second request
package fakexai

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zsmseven/backend/pkg/analysis"
	"github.com/zsmseven/backend/pkg/deploy"
)

// Key is an API key the tests may use. The server does not check keys
// unless RequireKey is set.
const Key = "xai-test-key-0123456789"

// Reply is one scripted answer.
type Reply struct {
	Status int
	Header http.Header
	Body   string
	// Delay is waited before answering (cut short if the client goes away).
	Delay time.Duration
	// Hang answers with headers and half a body, then closes the
	// connection (a reset mid-body).
	Hang bool
	// Generate, when set, builds the body from the request (see Generate).
	Generate *Generator
	// Drop: the answer is produced and billed (counted as paid and lost),
	// then the connection is closed before any of it is sent — an answer
	// paid for that the client never receives.
	Drop bool
}

// Request is one recorded request.
type Request struct {
	Method        string
	Path          string
	Authorization string
	// ConvID is the x-grok-conv-id header.
	ConvID string
	// Body is the raw JSON body; Decoded its parsed form.
	Body    []byte
	Decoded ChatRequest
}

// ChatRequest is the decoded request body (the fields tests assert on).
type ChatRequest struct {
	Model               string    `json:"model"`
	Messages            []Message `json:"messages"`
	Temperature         *float64  `json:"temperature"`
	MaxCompletionTokens int       `json:"max_completion_tokens"`
	ReasoningEffort     *string   `json:"reasoning_effort"`
	ResponseFormat      struct {
		Type       string `json:"type"`
		JSONSchema struct {
			Name   string          `json:"name"`
			Schema json.RawMessage `json:"schema"`
			Strict bool            `json:"strict"`
		} `json:"json_schema"`
	} `json:"response_format"`
}

// Message is one chat message of a request.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Server is the local xAI server.
type Server struct {
	// URL is the full chat completions URL (deploy.EnvXAIAPIURL).
	URL string
	// RequireKey, when set, answers 400 with xAI's bad-key body unless the
	// request carries "Bearer "+RequireKey. Set it before the first request.
	RequireKey string
	// NoReasoningEffort lists models that refuse reasoning_effort with 400.
	// Set it before the first request.
	NoReasoningEffort []string

	// AfterAnswer, when set, is called after a paid answer was written
	// whole (in the handler, before it returns): a test kills its client
	// there, after the answer was paid and sent. Set it before the first
	// request.
	AfterAnswer func(Request)

	srv      *httptest.Server
	mu       sync.Mutex
	script   []Reply
	requests []Request
	inFlight int
	peak     int
	refused  int
	paid     int
	lost     int
	repeated int
	bodies   map[[32]byte]bool
	// scored are the tickers' data (as sent) a paid answer scored validly;
	// again counts the tickers paid for once more.
	scored map[string]bool
	again  int
	usage  Usage
	busy   time.Duration
	cache  map[string]map[[32]byte]bool
}

// Usage sums the usage of the answers paid for.
type Usage struct {
	PromptTokens, CachedTokens, CompletionTokens, ReasoningTokens int
}

// New starts a server with the given script; it is closed when the test ends.
func New(t testing.TB, script ...Reply) *Server {
	t.Helper()
	s := NewServer(script...)
	t.Cleanup(s.Close)
	return s
}

// NewServer starts a server outside a test (e.g. the CLI's local run); call Close.
func NewServer(script ...Reply) *Server {
	s := &Server{script: script}
	s.srv = httptest.NewServer(http.HandlerFunc(s.handle))
	s.URL = s.srv.URL + "/v1/chat/completions"
	return s
}

// Close stops the server.
func (s *Server) Close() { s.srv.CloseClientConnections(); s.srv.Close() }

// Script replaces the remaining script.
func (s *Server) Script(replies ...Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script = replies
}

// Calls is the number of requests received.
func (s *Server) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.requests)
}

// Peak is the most requests the server was answering at once.
func (s *Server) Peak() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

// Refused counts the requests answered 400 for breaking the API's rules (an
// empty message, reasoning_effort for a model without it), whatever the
// script said.
func (s *Server) Refused() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refused
}

// Paid is the number of answers paid for: 200 answers written whole, and
// dropped ones (billed, never delivered).
func (s *Server) Paid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.paid
}

// Lost is the number of answers paid for and never delivered (Drop).
func (s *Server) Lost() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lost
}

// RepeatedPaid is the number of answers paid for again: for a request
// whose body was identical to one paid before, or — the ticker analyst's —
// for one that asks to score a ticker's data an earlier paid answer already
// scored validly (however the requests differ). What a client that keeps
// its paid answers, and uses them ticker by ticker, never pays. A repair
// asking again for the tickers an answer got wrong is not a repeat.
func (s *Server) RepeatedPaid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.repeated
}

// TickersPaidAgain is the number of ticker scorings paid for again: each
// ticker's data (symbol and figures, as sent) in a paid ticker-analyst
// request that an earlier paid answer scored validly.
func (s *Server) TickersPaidAgain() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.again
}

// Answering is the time spent producing the paid answers: the sum of their
// replies' delays (a generator's speed included).
func (s *Server) Answering() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.busy
}

// Usage is the sum of the paid answers' usage.
func (s *Server) Usage() Usage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.usage
}

// Reset forgets the counts of paid answers, their usage and the prompt
// cache (the recorded requests stay).
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.paid, s.lost, s.repeated, s.again, s.usage, s.busy = 0, 0, 0, 0, Usage{}, 0
	s.bodies, s.cache, s.scored = nil, nil, nil
}

// cached is how much of a request's leading messages the prompt cache of
// its conversation (x-grok-conv-id, or none) has seen: the bytes of the
// longest run of leading messages identical to another request's. The
// request's own prefixes are then remembered.
func (s *Server) cached(convID string, msgs []Message) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cache == nil {
		s.cache = map[string]map[[32]byte]bool{}
	}
	seen := s.cache[convID]
	if seen == nil {
		seen = map[[32]byte]bool{}
		s.cache[convID] = seen
	}
	h := sha256.New()
	hit, n := 0, 0
	for _, m := range msgs {
		h.Write([]byte(m.Role))
		h.Write([]byte{0})
		h.Write([]byte(m.Content))
		h.Write([]byte{0})
		n += len(m.Content)
		var k [32]byte
		copy(k[:], h.Sum(nil))
		if seen[k] && hit == n-len(m.Content) {
			hit = n
		}
		seen[k] = true
	}
	return hit
}

// bill counts a paid answer: its usage (from the reply's body) and whether
// it was paid before — the same request, or tickers scored before.
func (s *Server) bill(rec Request, reply string, delay time.Duration, dropped bool) {
	body := rec.Body
	asked, valid := tickerScoring(rec.Decoded, reply)
	var r struct {
		Usage struct {
			PromptTokens        int `json:"prompt_tokens"`
			CompletionTokens    int `json:"completion_tokens"`
			ReasoningTokens     int `json:"reasoning_tokens"`
			PromptTokensDetails struct {
				CachedTokens int `json:"cached_tokens"`
			} `json:"prompt_tokens_details"`
			CompletionTokensDetails struct {
				ReasoningTokens int `json:"reasoning_tokens"`
			} `json:"completion_tokens_details"`
		} `json:"usage"`
	}
	_ = json.Unmarshal([]byte(reply), &r)
	k := sha256.Sum256(body)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.paid++
	s.busy += delay
	if dropped {
		s.lost++
	}
	if s.bodies == nil {
		s.bodies = map[[32]byte]bool{}
	}
	if s.scored == nil {
		s.scored = map[string]bool{}
	}
	again := 0
	for _, t := range asked {
		if s.scored[t] {
			again++
		}
	}
	for _, t := range valid {
		s.scored[t] = true
	}
	if s.bodies[k] || again > 0 {
		s.repeated++
	}
	s.again += again
	s.bodies[k] = true
	s.usage.PromptTokens += r.Usage.PromptTokens
	s.usage.CachedTokens += r.Usage.PromptTokensDetails.CachedTokens
	s.usage.CompletionTokens += r.Usage.CompletionTokens
	s.usage.ReasoningTokens += r.Usage.ReasoningTokens + r.Usage.CompletionTokensDetails.ReasoningTokens
}

// tickerScoring reads a ticker-analyst request and its reply: the tickers
// asked about (each its symbol and data as sent) and those the answer
// scored validly (analysis.ParseTickers). Other requests give none.
func tickerScoring(req ChatRequest, reply string) (asked, valid []string) {
	if req.ResponseFormat.JSONSchema.Name != analysis.SchemaTickers {
		return nil, nil
	}
	var block struct {
		Tickers []json.RawMessage `json:"tickers"`
	}
	for _, m := range req.Messages {
		if m.Role != "user" {
			continue
		}
		i := strings.Index(m.Content, "_data>\n")
		if i < 0 {
			break
		}
		rest := m.Content[i+len("_data>\n"):]
		if j := strings.Index(rest, "\n</"); j >= 0 {
			_ = json.Unmarshal([]byte(rest[:j]), &block)
		}
		break
	}
	bySym := map[string]string{}
	var syms []string
	for _, raw := range block.Tickers {
		var t struct {
			Symbol string `json:"symbol"`
		}
		if json.Unmarshal(raw, &t) != nil || t.Symbol == "" {
			continue
		}
		key := t.Symbol + "\x00" + string(raw)
		asked = append(asked, key)
		bySym[t.Symbol] = key
		syms = append(syms, t.Symbol)
	}
	var r struct {
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
	}
	if json.Unmarshal([]byte(reply), &r) != nil || len(r.Choices) == 0 {
		return asked, nil
	}
	for sym := range analysis.ParseTickers(analysis.TickerCall{Symbols: syms}, []byte(r.Choices[0].Message.Content)).Scores {
		valid = append(valid, bySym[sym])
	}
	return asked, valid
}

// Requests returns a copy of the recorded requests.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

func (s *Server) next() Reply {
	switch len(s.script) {
	case 0:
		return Status(500, `{"code":"Internal error","error":"fakexai: no reply scripted"}`)
	case 1:
		return s.script[0]
	}
	r := s.script[0]
	s.script = s.script[1:]
	return r
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec := Request{Method: r.Method, Path: r.URL.Path, Authorization: r.Header.Get("Authorization"), ConvID: r.Header.Get("X-Grok-Conv-Id"), Body: body}
	_ = json.Unmarshal(body, &rec.Decoded)
	s.mu.Lock()
	s.requests = append(s.requests, rec)
	s.inFlight++
	s.peak = max(s.peak, s.inFlight)
	var reply Reply
	switch refusal := s.refusal(rec.Decoded); {
	case s.RequireKey != "" && rec.Authorization != "Bearer "+s.RequireKey:
		reply = BadKey()
	case refusal != nil:
		// xAI checks these before any work; the script is not consumed.
		reply = *refusal
		s.refused++
	default:
		reply = s.next()
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inFlight--
		s.mu.Unlock()
	}()
	if reply.Generate != nil {
		reply = reply.Generate.reply(rec.Decoded, reply, s.cached(rec.ConvID, rec.Decoded.Messages))
	}

	if reply.Delay > 0 {
		t := time.NewTimer(reply.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	for k, vs := range reply.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json")
	}
	if reply.Drop {
		s.bill(rec, reply.Body, reply.Delay, true)
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				_ = c.Close()
			}
		}
		return
	}
	if reply.Hang {
		w.Header().Set("Content-Length", fmt.Sprint(len(reply.Body)))
		w.WriteHeader(reply.Status)
		_, _ = io.WriteString(w, reply.Body[:len(reply.Body)/2])
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				_ = c.Close()
			}
		}
		return
	}
	w.WriteHeader(reply.Status)
	if _, err := io.WriteString(w, reply.Body); err != nil || reply.Status != http.StatusOK {
		return
	}
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	s.bill(rec, reply.Body, reply.Delay, false)
	if s.AfterAnswer != nil {
		s.AfterAnswer(rec)
	}
}

// refusal is xAI's 400 for a request that breaks its rules, or nil.
func (s *Server) refusal(req ChatRequest) *Reply {
	for _, m := range req.Messages {
		if m.Content == "" {
			r := Status(400, EmptyMessageBody)
			return &r
		}
	}
	if req.ReasoningEffort != nil && slices.Contains(s.NoReasoningEffort, req.Model) {
		b, _ := json.Marshal(map[string]string{"code": "Client specified an invalid argument",
			"error": fmt.Sprintf("Model %s does not support parameter reasoningEffort.", req.Model)})
		r := Status(400, string(b))
		return &r
	}
	return nil
}

// EmptyMessageBody is xAI's 400 body for a message with empty content.
const EmptyMessageBody = `{"code":"Client specified an invalid argument","error":"An empty message was provided. Every message needs at least one non-empty content element."}`

// Status is a reply with any status and body.
func Status(code int, body string) Reply { return Reply{Status: code, Body: body} }

// Completion describes a 200 answer; Body renders it in xAI's shape.
type Completion struct {
	Content           string
	FinishReason      string // "stop" if empty
	Model             string // deploy.DefaultXAIModel if empty
	SystemFingerprint string // "fp_fakexai" if empty
	PromptTokens      int
	CompletionTokens  int
	ReasoningTokens   int
	// ReasoningTopLevel puts reasoning_tokens at the top of usage (older
	// responses) instead of completion_tokens_details.
	ReasoningTopLevel bool
	// CostInUSDTicks is usage.cost_in_usd_ticks; omitted when 0.
	CostInUSDTicks int64
	// CachedTokens is usage.prompt_tokens_details.cached_tokens.
	CachedTokens int
}

// Reply renders c as a 200 reply.
func (c Completion) Reply() Reply {
	if c.FinishReason == "" {
		c.FinishReason = "stop"
	}
	if c.Model == "" {
		c.Model = deploy.DefaultXAIModel
	}
	if c.SystemFingerprint == "" {
		c.SystemFingerprint = "fp_fakexai"
	}
	usage := map[string]any{
		"prompt_tokens": c.PromptTokens, "completion_tokens": c.CompletionTokens,
		"total_tokens":          c.PromptTokens + c.CompletionTokens + c.ReasoningTokens,
		"prompt_tokens_details": map[string]any{"text_tokens": c.PromptTokens, "audio_tokens": 0, "image_tokens": 0, "cached_tokens": c.CachedTokens},
		"num_sources_used":      0,
	}
	if c.ReasoningTopLevel {
		usage["reasoning_tokens"] = c.ReasoningTokens
	} else {
		usage["completion_tokens_details"] = map[string]any{"reasoning_tokens": c.ReasoningTokens, "audio_tokens": 0,
			"accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
	}
	if c.CostInUSDTicks != 0 {
		usage["cost_in_usd_ticks"] = c.CostInUSDTicks
	}
	body, _ := json.Marshal(map[string]any{
		"id": "fakexai-0001", "object": "chat.completion", "created": 1764379200, "model": c.Model,
		"choices": []any{map[string]any{"index": 0, "message": map[string]any{"role": "assistant", "content": c.Content, "refusal": nil},
			"finish_reason": c.FinishReason}},
		"usage": usage, "system_fingerprint": c.SystemFingerprint,
	})
	return Reply{Status: 200, Body: string(body)}
}

// Answer is a 200 reply whose message content is content, with modest usage
// and a cost of 1,234,500 ticks (0.00012345 USD).
func Answer(content string) Reply {
	return Completion{Content: content, PromptTokens: 1200, CompletionTokens: 300, ReasoningTokens: 150, CostInUSDTicks: 1234500}.Reply()
}

// BadKey is xAI's answer to an unknown key: 400 with {"code","error"}.
func BadKey() Reply {
	return Status(400, `{"code":"Client specified an invalid argument","error":"Incorrect API key provided: xa***89. You can obtain an API key from https://console.x.ai."}`)
}

// Unauthorized is the answer to a request without credentials.
func Unauthorized() Reply {
	return Status(401, `{"code":"Unauthenticated","error":"No API key provided."}`)
}

// UnknownModel is the answer to a model name that does not exist.
func UnknownModel(model string) Reply {
	b, _ := json.Marshal(map[string]string{"code": "Some requested entity was not found", "error": fmt.Sprintf("The model %s does not exist or your team does not have access to it.", model)})
	return Status(404, string(b))
}

// Unprocessable is a 422 for an invalid field.
func Unprocessable() Reply {
	return Status(422, `{"code":"Client specified an invalid argument","error":"Failed to deserialize the JSON body into the target type: response_format: unknown variant"}`)
}

// RateLimited is a 429 that may succeed later, with Retry-After seconds
// (omitted when 0).
func RateLimited(retryAfterSeconds int) Reply {
	r := Status(429, `{"code":"Too many requests","error":"Your team has exceeded its requests per second rate limit. Please retry later."}`)
	if retryAfterSeconds > 0 {
		r.Header = http.Header{"Retry-After": {fmt.Sprint(retryAfterSeconds)}}
	}
	return r
}

// CreditsExhausted is a 429 saying the credits or spending limit are used up.
func CreditsExhausted() Reply {
	return Status(429, `{"code":"Too many requests","error":"Your team has either used all available credits or reached its monthly spending limit. To continue making API requests, please purchase more credits or raise your spending limit."}`)
}

// ServerError is a 500.
func ServerError() Reply {
	return Status(500, `{"code":"Internal error","error":"Service temporarily unavailable. Please try again."}`)
}

// Slow delays r by d.
func Slow(r Reply, d time.Duration) Reply { r.Delay = d; return r }

// ContentFiltered is a 200 whose answer the content filter withheld:
// finish_reason "content_filter" and empty content.
func ContentFiltered() Reply {
	return Completion{Content: "", FinishReason: "content_filter", PromptTokens: 1200, CompletionTokens: 0, ReasoningTokens: 90}.Reply()
}

// CutOff is a 200 cut at the completion cap (finish_reason "length") with
// the given partial content, possibly empty: a reasoning model can spend
// the whole answer budget before writing a character.
func CutOff(content string) Reply {
	return Completion{Content: content, FinishReason: "length", PromptTokens: 1200, CompletionTokens: 8000, ReasoningTokens: 2500}.Reply()
}
