// Package localsqs is a small in-process stand-in for Amazon SQS, for local
// runs and tests only. The emulators that speak the current SQS JSON protocol,
// moto (Python) and ElasticMQ >= 1.4 (JVM), are not installable by the
// project's own files, which install only Go modules and npm packages (no
// PyPI, no Maven, no Docker engine here). In process, this package also plays
// Lambda's event source mapping, with visibility and the dead-letter queue on
// a clock tests move. It implements the subset the service uses:
//
//   - an HTTP endpoint speaking the SQS JSON protocol (awsJson1_0) for
//     SendMessage, SendMessageBatch, GetQueueUrl, ChangeMessageVisibility and
//     ChangeMessageVisibilityBatch, so the real AWS SDK clients of
//     processTickers and processTicker (AWS_ENDPOINT_URL_SQS) can publish to
//     it and release the records they hand back, MD5 check of the body
//     included;
//   - FIFO semantics for queues whose name ends in ".fifo": MessageGroupId is
//     required, MessageDeduplicationId deduplicates within five minutes, and a
//     group with a message in flight hands out nothing else;
//   - a Go API that plays the Lambda event source mapping: it takes queued
//     messages as events.SQSEvent batches of up to ten records, shaped like the
//     ones Lambda delivers, and settles them from the handler's
//     events.SQSEventResponse (records listed in batchItemFailures stay
//     hidden until their visibility timeout ends, as SQS keeps them, unless
//     the handler changed their visibility; after MaxReceiveCount receives
//     they move to the dead-letter list).
//
// Visibility timeouts are simulated on the server's clock (Options.Now, a
// settable clock in tests) when Options.VisibilityTimeout is set: a record
// handed back without ChangeMessageVisibility waits out the timeout, and in
// a FIFO queue its message group hands out nothing meanwhile. Without it a
// handed-back record is visible again at once. DelaySeconds is not simulated
// (FIFO queues do not accept a per-message delay anyway).
package localsqs

import (
	"cmp"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// Fixed identity of the local queues.
const (
	// Account is the account id in queue URLs and ARNs.
	Account = "000000000000"
	// Region is the region in ARNs and event records.
	Region = "us-east-1"
	// DefaultMaxReceiveCount matches the deployed redrive policy.
	DefaultMaxReceiveCount = 5
	// DedupWindow is how long SQS remembers a FIFO deduplication id.
	DedupWindow = 5 * time.Minute
	// MaxBatch is the largest batch SendMessageBatch accepts and the batch
	// size of the deployed event source mapping.
	MaxBatch = 10
	// MaxMessageBytes is the largest message body SQS accepts (256 KiB).
	MaxMessageBytes = 256 * 1024
)

// Options configure a Server. The zero value is usable.
type Options struct {
	// MaxReceiveCount is how many receives a message gets before it moves to
	// the dead-letter list (default DefaultMaxReceiveCount).
	MaxReceiveCount int
	// VisibilityTimeout, when set, hides a received message for that long
	// (the deployed queue's 1080 s, say): one handed back without a
	// visibility change comes back when it ends. Zero hands it back at once.
	VisibilityTimeout time.Duration
	// Now is the clock (default time.Now); tests move it to expire dedup ids
	// and visibility timeouts.
	Now func() time.Time
}

// Server holds the queues and serves the HTTP endpoint.
type Server struct {
	opts Options

	mu     sync.Mutex
	queues map[string]*queue
	seq    int64

	ln       net.Listener
	srv      *http.Server
	endpoint string
}

type queue struct {
	name     string
	fifo     bool
	ready    []*message          // visible messages, in order
	inflight map[string]*message // by receipt handle
	dead     []*message
	dedup    map[string]dedupEntry
}

type dedupEntry struct {
	messageID string
	seq       int64
	at        time.Time
}

type message struct {
	id, body, md5      string
	groupID, dedupID   string
	seq                int64
	sent, firstReceive time.Time
	receiveCount       int
	receipt            string
	attrs              map[string]events.SQSMessageAttribute
	// hiddenUntil is when an in-flight message is visible again (zero:
	// not before it is settled); changed, that the handler set it.
	hiddenUntil time.Time
	changed     bool
}

// Start listens on addr (e.g. "127.0.0.1:0") and serves the SQS endpoint
// until Close.
func Start(addr string, opts Options) (*Server, error) {
	if opts.MaxReceiveCount <= 0 {
		opts.MaxReceiveCount = DefaultMaxReceiveCount
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("localsqs listen %s: %w", addr, err)
	}
	s := &Server{opts: opts, queues: map[string]*queue{}, ln: ln, endpoint: "http://" + ln.Addr().String()}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Endpoint is the base URL to give the SDK (AWS_ENDPOINT_URL_SQS).
func (s *Server) Endpoint() string { return s.endpoint }

// Close stops the HTTP server. Queued messages are dropped.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}

// CreateQueue creates a queue (a no-op if it exists) and returns its URL,
// e.g. http://127.0.0.1:PORT/000000000000/ticker-processing-queue-local.fifo.
// A name ending in ".fifo" makes a FIFO queue.
func (s *Server) CreateQueue(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.queues[name]; !ok {
		s.queues[name] = &queue{name: name, fifo: strings.HasSuffix(name, ".fifo"),
			inflight: map[string]*message{}, dedup: map[string]dedupEntry{}}
	}
	return s.QueueURL(name)
}

// QueueURL is the URL of the named queue on this server.
func (s *Server) QueueURL(name string) string { return s.endpoint + "/" + Account + "/" + name }

// ARN is the queue's ARN as Lambda puts it in eventSourceARN.
func ARN(name string) string { return "arn:aws:sqs:" + Region + ":" + Account + ":" + name }

// Counts is a snapshot of one queue.
type Counts struct {
	// Visible messages wait to be received; InFlight were received and are
	// not visible again yet (not settled, or handed back and waiting out
	// their visibility timeout).
	Visible, InFlight, Dead int
}

// Counts returns the queue's message counts (zero for an unknown queue).
func (s *Server) Counts(name string) Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, ok := s.queues[name]
	if !ok {
		return Counts{}
	}
	s.surface(q)
	return Counts{Visible: len(q.ready), InFlight: len(q.inflight), Dead: len(q.dead)}
}

// surface makes the in-flight messages whose visibility timeout has ended
// visible again, in sequence order. s.mu is held.
func (s *Server) surface(q *queue) {
	now := s.opts.Now()
	back := false
	for r, m := range q.inflight {
		if !m.hiddenUntil.IsZero() && !now.Before(m.hiddenUntil) {
			delete(q.inflight, r)
			m.receipt, m.hiddenUntil, m.changed = "", time.Time{}, false
			q.ready = append(q.ready, m)
			back = true
		}
	}
	if back {
		slices.SortFunc(q.ready, func(a, b *message) int { return cmp.Compare(a.seq, b.seq) })
	}
}

// DeadLetters returns the bodies of the messages moved to the dead-letter list.
func (s *Server) DeadLetters(name string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, ok := s.queues[name]
	if !ok {
		return nil
	}
	out := make([]string, len(q.dead))
	for i, m := range q.dead {
		out[i] = m.body
	}
	return out
}

// Visible returns the bodies of the queue's visible messages, in order (for a
// dead-letter queue that processTicker sends to: its messages).
func (s *Server) Visible(name string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, ok := s.queues[name]
	if !ok {
		return nil
	}
	out := make([]string, len(q.ready))
	for i, m := range q.ready {
		out[i] = m.body
	}
	return out
}

// ErrNoQueue means the queue was never created.
var ErrNoQueue = errors.New("queue does not exist")

// sendInput is one message to enqueue, from either API.
type sendInput struct {
	body, groupID, dedupID string
	attrs                  map[string]events.SQSMessageAttribute
}

// sendResult is what SQS answers for one accepted message.
type sendResult struct {
	messageID, md5, seq string
}

// apiError is an SQS error with its protocol code.
type apiError struct {
	code, msg string
	sender    bool
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

func (s *Server) send(q *queue, in sendInput) (sendResult, *apiError) {
	if in.body == "" {
		return sendResult{}, &apiError{"MissingParameter", "The request must contain the parameter MessageBody.", true}
	}
	if len(in.body) > MaxMessageBytes {
		return sendResult{}, &apiError{"InvalidParameterValue", fmt.Sprintf("One or more parameters are invalid. Reason: Message must be shorter than %d bytes.", MaxMessageBytes), true}
	}
	if q.fifo {
		if in.groupID == "" {
			return sendResult{}, &apiError{"MissingParameter", "The request must contain the parameter MessageGroupId.", true}
		}
		if in.dedupID == "" {
			return sendResult{}, &apiError{"InvalidParameterValue", "The queue should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly", true}
		}
	}
	sum := md5.Sum([]byte(in.body))
	now := s.opts.Now()
	if q.fifo {
		if d, ok := q.dedup[in.dedupID]; ok && now.Sub(d.at) < DedupWindow {
			// SQS accepts a duplicate and answers as for the original.
			return sendResult{messageID: d.messageID, md5: hex.EncodeToString(sum[:]), seq: seqString(d.seq)}, nil
		}
	}
	s.seq++
	m := &message{id: newID(), body: in.body, md5: hex.EncodeToString(sum[:]), groupID: in.groupID, dedupID: in.dedupID,
		seq: s.seq, sent: now, attrs: in.attrs}
	q.ready = append(q.ready, m)
	if q.fifo {
		q.dedup[in.dedupID] = dedupEntry{messageID: m.id, seq: m.seq, at: now}
	}
	r := sendResult{messageID: m.id, md5: m.md5}
	if q.fifo {
		r.seq = seqString(m.seq)
	}
	return r, nil
}

// seqString formats a FIFO sequence number the way SQS does (a long decimal).
func seqString(n int64) string { return fmt.Sprintf("%020d", n) }

// Receive takes up to max (at most MaxBatch) visible messages as one Lambda
// event and marks them in flight. For a FIFO queue, messages come in order and
// a message group with a message in flight yields nothing more until it is
// settled, as SQS does. An empty event means nothing is visible.
func (s *Server) Receive(name string, max int) (events.SQSEvent, error) {
	if max <= 0 || max > MaxBatch {
		max = MaxBatch
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q, ok := s.queues[name]
	if !ok {
		return events.SQSEvent{}, fmt.Errorf("receive from %s: %w", name, ErrNoQueue)
	}
	s.surface(q)
	busy := map[string]bool{}
	if q.fifo {
		for _, m := range q.inflight {
			busy[m.groupID] = true
		}
	}
	now := s.opts.Now()
	var ev events.SQSEvent
	var keep []*message
	for _, m := range q.ready {
		if len(ev.Records) == max || (q.fifo && busy[m.groupID]) {
			keep = append(keep, m)
			continue
		}
		m.receiveCount++
		if m.firstReceive.IsZero() {
			m.firstReceive = now
		}
		m.receipt = newID() + "#" + m.id
		m.hiddenUntil, m.changed = time.Time{}, false
		if s.opts.VisibilityTimeout > 0 {
			m.hiddenUntil = now.Add(s.opts.VisibilityTimeout)
		}
		q.inflight[m.receipt] = m
		ev.Records = append(ev.Records, s.record(q, m))
	}
	q.ready = keep
	return ev, nil
}

func (s *Server) record(q *queue, m *message) events.SQSMessage {
	attrs := map[string]string{
		"ApproximateReceiveCount":          strconv.Itoa(m.receiveCount),
		"SentTimestamp":                    strconv.FormatInt(m.sent.UnixMilli(), 10),
		"SenderId":                         "AIDALOCALSQS000000000",
		"ApproximateFirstReceiveTimestamp": strconv.FormatInt(m.firstReceive.UnixMilli(), 10),
	}
	if m.groupID != "" {
		attrs["MessageGroupId"] = m.groupID
	}
	if q.fifo {
		attrs["MessageDeduplicationId"] = m.dedupID
		attrs["SequenceNumber"] = seqString(m.seq)
	}
	msgAttrs := map[string]events.SQSMessageAttribute{}
	for k, v := range m.attrs {
		msgAttrs[k] = v
	}
	return events.SQSMessage{
		MessageId: m.id, ReceiptHandle: m.receipt, Body: m.body, Md5OfBody: m.md5,
		Attributes: attrs, MessageAttributes: msgAttrs,
		EventSource: "aws:sqs", EventSourceARN: ARN(q.name), AWSRegion: Region,
	}
}

// Outcome counts how a batch was settled.
type Outcome struct {
	// Deleted records succeeded; Requeued go back to the queue (visible when
	// their visibility timeout, or the one the handler set, ends);
	// DeadLettered reached MaxReceiveCount and moved to the dead-letter list.
	Deleted, Requeued, DeadLettered int
}

// Settle applies a handler's answer to a batch from Receive, the way the
// Lambda event source mapping does with ReportBatchItemFailures: a handler
// error fails the whole batch; otherwise every record not named in
// BatchItemFailures is deleted. A failure naming no record of the batch (or an
// empty id) also fails the whole batch, as Lambda treats it. Failed records
// stay hidden until their visibility timeout ends (or the time the handler
// set with ChangeMessageVisibility) — at once without VisibilityTimeout —
// then return in sequence order; or move to the dead-letter list once they
// have been received MaxReceiveCount times.
func (s *Server) Settle(name string, ev events.SQSEvent, resp events.SQSEventResponse, handlerErr error) (Outcome, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, ok := s.queues[name]
	if !ok {
		return Outcome{}, fmt.Errorf("settle on %s: %w", name, ErrNoQueue)
	}
	inBatch := map[string]bool{}
	for _, r := range ev.Records {
		inBatch[r.MessageId] = true
	}
	failed := map[string]bool{}
	all := handlerErr != nil
	for _, f := range resp.BatchItemFailures {
		if !inBatch[f.ItemIdentifier] {
			all = true
		}
		failed[f.ItemIdentifier] = true
	}
	var out Outcome
	now := s.opts.Now()
	for _, r := range ev.Records {
		m, ok := q.inflight[r.ReceiptHandle]
		if !ok {
			return out, fmt.Errorf("settle on %s: receipt handle of %s is not in flight", name, r.MessageId)
		}
		switch {
		case !all && !failed[m.id]:
			delete(q.inflight, r.ReceiptHandle)
			out.Deleted++
		case m.receiveCount >= s.opts.MaxReceiveCount:
			delete(q.inflight, r.ReceiptHandle)
			q.dead = append(q.dead, m)
			out.DeadLettered++
		default:
			// SQS leaves a failed record where it is: hidden until its
			// visibility timeout ends, or the handler's change.
			if !m.changed && m.hiddenUntil.IsZero() {
				m.hiddenUntil = now
			}
			out.Requeued++
		}
	}
	s.surface(q)
	return out, nil
}

// ErrReceiptHandle means a receipt handle names no message in flight.
var ErrReceiptHandle = errors.New("receipt handle is not valid")

// changeVisibility hides the in-flight message of receipt for d from now
// (0: visible at once). s.mu is held.
func (s *Server) changeVisibility(q *queue, receipt string, d time.Duration) error {
	m, ok := q.inflight[receipt]
	if !ok {
		return ErrReceiptHandle
	}
	m.hiddenUntil, m.changed = s.opts.Now().Add(d), true
	return nil
}

// Handler is a Lambda SQS handler with partial batch responses.
type Handler func(context.Context, events.SQSEvent) (events.SQSEventResponse, error)

// Totals sums the outcomes of Drain.
type Totals struct {
	Batches int
	Outcome
	// Peak is the most handler invocations that ran at once.
	Peak int
	// Waiting is the number of messages left hidden when Drain ended: handed
	// back and waiting out a visibility timeout.
	Waiting int
}

// Drain feeds the queue to h in batches of up to batchSize until nothing is
// visible or ctx ends, settling each batch with Settle. It returns the totals
// (with the messages left waiting for their visibility timeout) and ctx's
// error if it was cut short. Because every failure increments a receive
// count, Drain always ends: a message that keeps failing reaches the
// dead-letter list, or waits out its visibility timeout.
func (s *Server) Drain(ctx context.Context, name string, batchSize int, h Handler) (Totals, error) {
	var t Totals
	for {
		if err := ctx.Err(); err != nil {
			return t, err
		}
		ev, err := s.Receive(name, batchSize)
		if err != nil {
			return t, err
		}
		if len(ev.Records) == 0 {
			t.Waiting = s.Counts(name).InFlight
			return t, nil
		}
		resp, herr := h(ctx, ev)
		o, err := s.Settle(name, ev, resp, herr)
		if err != nil {
			return t, err
		}
		t.Batches++
		t.Deleted += o.Deleted
		t.Requeued += o.Requeued
		t.DeadLettered += o.DeadLettered
	}
}

// DrainConcurrent plays an event source mapping with a maximum concurrency:
// up to workers invocations of h at once, each fed a batch of up to
// batchSize as soon as one is visible, until nothing is visible or in
// flight (or ctx ends). As in Drain, every failure raises a receive count,
// so it always ends; the visibility timeout is not simulated, so a record
// handed back is received again at once.
func (s *Server) DrainConcurrent(ctx context.Context, name string, batchSize, workers int, h Handler) (Totals, error) {
	var (
		mu       sync.Mutex
		t        Totals
		firstErr error
		inFlight int
		wg       sync.WaitGroup
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
		}
	}
	for range max(workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if err := ctx.Err(); err != nil {
					fail(err)
					return
				}
				mu.Lock()
				stop := firstErr != nil
				mu.Unlock()
				if stop {
					return
				}
				ev, err := s.Receive(name, batchSize)
				if err != nil {
					fail(err)
					return
				}
				if len(ev.Records) == 0 {
					if c := s.Counts(name); c.Visible == 0 && c.InFlight == 0 {
						return
					}
					// Another worker holds a batch that may come back.
					time.Sleep(time.Millisecond)
					continue
				}
				mu.Lock()
				inFlight++
				t.Peak = max(t.Peak, inFlight)
				mu.Unlock()
				resp, herr := h(ctx, ev)
				o, err := s.Settle(name, ev, resp, herr)
				mu.Lock()
				inFlight--
				t.Batches++
				t.Deleted += o.Deleted
				t.Requeued += o.Requeued
				t.DeadLettered += o.DeadLettered
				mu.Unlock()
				if err != nil {
					fail(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return t, firstErr
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
