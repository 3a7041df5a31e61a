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
//   - a Go API that plays the Lambda event source mapping: Receive takes
//     queued messages as events.SQSEvent batches of up to ten records, shaped
//     like the ones Lambda delivers; Settle applies the handler's
//     events.SQSEventResponse (records listed in batchItemFailures, or the
//     whole batch on a handler error, are handed back; after MaxReceiveCount
//     receives a record moves to the dead-letter list); Consume (Drain,
//     DrainConcurrent) feeds a handler with up to a maximum concurrency, each
//     invocation with the function's timeout as its deadline.
//
// Visibility timeouts are simulated on the server's clock (Options.Clock, a
// fakeclock in tests) when set (Options.VisibilityTimeout, or per queue with
// CreateQueueWith): a record handed back without ChangeMessageVisibility
// waits out the timeout, and in a FIFO queue its message group hands out
// nothing meanwhile. Without one, a handed-back record is visible again at
// once. Options.RedeliverAtOnce is the local run's shortening: every record
// handed back is visible again at once, whatever the timeout or its
// handler's visibility change, and the dead-letter list still takes it after
// MaxReceiveCount receives. DelaySeconds is not simulated (FIFO queues do not
// accept a per-message delay anyway).
//
// Consumers never poll: one that finds nothing to receive while its other
// invocations run waits for a signal — a message sent, a visibility change, a
// batch settled, a visibility timeout ending on the clock (Clock.AfterFunc),
// the server closing, or its context ending.
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

// Clock is the server's time: Now, and AfterFunc to be called when an
// instant has come (a visibility timeout ends). *fakeclock.Clock is one.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f once, when the clock has moved on by d; stop
	// cancels the call and reports whether it did.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

// realClock is the wall clock.
type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) AfterFunc(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }

// Options configure a Server. The zero value is usable.
type Options struct {
	// MaxReceiveCount is how many receives a message gets before it moves to
	// the dead-letter list (default DefaultMaxReceiveCount), for the queues
	// created without their own.
	MaxReceiveCount int
	// VisibilityTimeout, when set, hides a received message for that long
	// (the deployed queue's 1080 s, say), for the queues created without
	// their own: one handed back without a visibility change comes back when
	// it ends. Zero hands it back at once.
	VisibilityTimeout time.Duration
	// RedeliverAtOnce makes every record handed back — by a handler error, a
	// batchItemFailures entry or an invocation cut by its deadline — visible
	// again as soon as its batch is settled, whatever the visibility timeout
	// or the visibility its handler set: the local run's shortening of the
	// waits that SQS spreads over a night. Receive counts and the
	// dead-letter list are kept; a record still in flight keeps its
	// visibility timeout.
	RedeliverAtOnce bool
	// Clock is the server's time (default the wall clock); tests move a
	// fakeclock.Clock to expire dedup ids and visibility timeouts.
	Clock Clock
}

// QueueOptions are one queue's settings; zero takes the server's.
type QueueOptions struct {
	// VisibilityTimeout is the queue's (0: Options.VisibilityTimeout).
	VisibilityTimeout time.Duration
	// MaxReceiveCount is the queue's redrive policy (0: Options.MaxReceiveCount).
	MaxReceiveCount int
	// Pick, for a standard queue, chooses which of its n visible messages
	// (in the order sent) a receive hands out next: SQS does not promise a
	// standard queue's order, and a test plays it out of order (NewestFirst,
	// or a seeded draw). nil hands them out in order; a FIFO queue ignores
	// it.
	Pick func(n int) int
}

// NewestFirst is a Pick that hands out the message sent last first.
func NewestFirst(n int) int { return n - 1 }

// Server holds the queues and serves the HTTP endpoint.
type Server struct {
	opts  Options
	clock Clock

	mu     sync.Mutex
	queues map[string]*queue
	seq    int64
	// wake is closed, and replaced, whenever a waiting consumer may find
	// something new: a message sent, a visibility changed or ended, a batch
	// settled, the server closed (signal).
	wake   chan struct{}
	closed bool
	// looks counts the times a consumer looked for a batch (tests: no busy
	// loop).
	looks int64

	ln       net.Listener
	srv      *http.Server
	endpoint string
}

type queue struct {
	name            string
	fifo            bool
	visibility      time.Duration
	maxReceiveCount int
	pick            func(n int) int
	ready           []*message          // visible messages, in order
	inflight        map[string]*message // by receipt handle
	// handed are the receipts of the batches received and not settled yet:
	// a message may have left inflight meanwhile (its visibility changed or
	// ended), but its batch still gets settled once.
	handed map[string]*message
	dead   []*message
	dedup  map[string]dedupEntry
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
	// receipt is the receipt handle of its current receive ("" while it is
	// visible).
	receipt string
	attrs   map[string]events.SQSMessageAttribute
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
	clock := opts.Clock
	if clock == nil {
		clock = realClock{}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("localsqs listen %s: %w", addr, err)
	}
	s := &Server{opts: opts, clock: clock, queues: map[string]*queue{}, wake: make(chan struct{}),
		ln: ln, endpoint: "http://" + ln.Addr().String()}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Endpoint is the base URL to give the SDK (AWS_ENDPOINT_URL_SQS).
func (s *Server) Endpoint() string { return s.endpoint }

// ErrClosed ends the consumers of a closed server.
var ErrClosed = errors.New("localsqs: server closed")

// Close stops the HTTP server and ends the consumers waiting for a batch
// (ErrClosed). Queued messages are dropped.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	s.signal()
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}

// signal wakes every waiting consumer. s.mu is held.
func (s *Server) signal() {
	close(s.wake)
	s.wake = make(chan struct{})
}

// CreateQueue creates a queue with the server's settings (a no-op if it
// exists) and returns its URL, e.g.
// http://127.0.0.1:PORT/000000000000/ticker-processing-queue-local.fifo.
// A name ending in ".fifo" makes a FIFO queue.
func (s *Server) CreateQueue(name string) string { return s.CreateQueueWith(name, QueueOptions{}) }

// CreateQueueWith creates a queue with its own settings (a no-op if it
// exists) and returns its URL.
func (s *Server) CreateQueueWith(name string, o QueueOptions) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.queues[name]; !ok {
		q := &queue{name: name, fifo: strings.HasSuffix(name, ".fifo"), visibility: o.VisibilityTimeout, maxReceiveCount: o.MaxReceiveCount,
			inflight: map[string]*message{}, handed: map[string]*message{}, dedup: map[string]dedupEntry{}}
		if !q.fifo {
			q.pick = o.Pick
		}
		if q.visibility <= 0 {
			q.visibility = s.opts.VisibilityTimeout
		}
		if q.maxReceiveCount <= 0 {
			q.maxReceiveCount = s.opts.MaxReceiveCount
		}
		s.queues[name] = q
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
// visible again, in sequence order, and wakes the consumers if any did.
// s.mu is held.
func (s *Server) surface(q *queue) {
	now := s.clock.Now()
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
		s.signal()
	}
}

// nextSurface is the earliest end of a visibility timeout in q (zero:
// none). s.mu is held.
func (q *queue) nextSurface() time.Time {
	var next time.Time
	for _, m := range q.inflight {
		if !m.hiddenUntil.IsZero() && (next.IsZero() || m.hiddenUntil.Before(next)) {
			next = m.hiddenUntil
		}
	}
	return next
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
	s.surface(q)
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

// send enqueues one message. s.mu is held.
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
	now := s.clock.Now()
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
	s.signal()
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
// settled, as SQS does. An empty event means nothing is visible. It does not
// wait: Consume does.
func (s *Server) Receive(name string, max int) (events.SQSEvent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, ok := s.queues[name]
	if !ok {
		return events.SQSEvent{}, fmt.Errorf("receive from %s: %w", name, ErrNoQueue)
	}
	return s.receive(q, max), nil
}

// receive is Receive on q. s.mu is held.
func (s *Server) receive(q *queue, max int) events.SQSEvent {
	if max <= 0 || max > MaxBatch {
		max = MaxBatch
	}
	s.surface(q)
	busy := map[string]bool{}
	if q.fifo {
		for _, m := range q.inflight {
			busy[m.groupID] = true
		}
	}
	now := s.clock.Now()
	var ev events.SQSEvent
	take := func(m *message) {
		m.receiveCount++
		if m.firstReceive.IsZero() {
			m.firstReceive = now
		}
		m.receipt = newID() + "#" + m.id
		m.hiddenUntil, m.changed = time.Time{}, false
		if q.visibility > 0 {
			m.hiddenUntil = now.Add(q.visibility)
		}
		q.inflight[m.receipt] = m
		q.handed[m.receipt] = m
		ev.Records = append(ev.Records, s.record(q, m))
	}
	if q.pick != nil {
		for len(ev.Records) < max && len(q.ready) > 0 {
			i := min(q.pick(len(q.ready)), len(q.ready)-1)
			if i < 0 {
				i = 0
			}
			m := q.ready[i]
			q.ready = slices.Delete(q.ready, i, i+1)
			take(m)
		}
		return ev
	}
	var keep []*message
	for _, m := range q.ready {
		if len(ev.Records) == max || (q.fifo && busy[m.groupID]) {
			keep = append(keep, m)
			continue
		}
		take(m)
	}
	q.ready = keep
	return ev
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
	// their visibility timeout, or the one the handler set, ends — at once
	// with RedeliverAtOnce); DeadLettered reached MaxReceiveCount and moved
	// to the dead-letter list.
	Deleted, Requeued, DeadLettered int
}

// ErrTimedOut is the handler error Consume settles a batch with when its
// invocation was cut by its deadline: Lambda ignores whatever the function
// answers after its timeout and fails the whole batch.
var ErrTimedOut = errors.New("invocation timed out")

// Settle applies a handler's answer to a batch from Receive, the way the
// Lambda event source mapping does with ReportBatchItemFailures: a handler
// error fails the whole batch; otherwise every record not named in
// BatchItemFailures is deleted. A failure naming no record of the batch (or an
// empty id) also fails the whole batch, as Lambda treats it. Failed records
// stay hidden until their visibility timeout ends (or the time the handler
// set with ChangeMessageVisibility) — at once without a visibility timeout
// or with RedeliverAtOnce — then return in sequence order; or move to the
// dead-letter list once they have been received MaxReceiveCount times. A
// record whose visibility the handler ended early is already back: a
// failure leaves it there (or dead-letters it), a success deletes it unless
// it was received again meanwhile. Settling a batch twice is an error.
func (s *Server) Settle(name string, ev events.SQSEvent, resp events.SQSEventResponse, handlerErr error) (Outcome, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, ok := s.queues[name]
	if !ok {
		return Outcome{}, fmt.Errorf("settle on %s: %w", name, ErrNoQueue)
	}
	for _, r := range ev.Records {
		if q.handed[r.ReceiptHandle] == nil {
			return Outcome{}, fmt.Errorf("settle on %s: the receipt handle of %s is of no batch being handled (settled already?)", name, r.MessageId)
		}
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
	now := s.clock.Now()
	for _, r := range ev.Records {
		m := q.handed[r.ReceiptHandle]
		delete(q.handed, r.ReceiptHandle)
		held := q.inflight[r.ReceiptHandle] == m
		visible := !held && slices.Contains(q.ready, m)
		switch {
		case !all && !failed[m.id]:
			if held {
				delete(q.inflight, r.ReceiptHandle)
				out.Deleted++
			} else if visible {
				q.ready = slices.DeleteFunc(q.ready, func(x *message) bool { return x == m })
				out.Deleted++
			}
			// Received again meanwhile: a stale receipt handle deletes
			// nothing, as on SQS.
		case m.receiveCount >= q.maxReceiveCount && (held || visible):
			if held {
				delete(q.inflight, r.ReceiptHandle)
			} else {
				q.ready = slices.DeleteFunc(q.ready, func(x *message) bool { return x == m })
			}
			m.receipt, m.hiddenUntil, m.changed = "", time.Time{}, false
			q.dead = append(q.dead, m)
			out.DeadLettered++
		default:
			// SQS leaves a failed record where it is: hidden until its
			// visibility timeout ends, or the handler's change; the local
			// run's shortening makes it visible now.
			if held && (s.opts.RedeliverAtOnce || (!m.changed && m.hiddenUntil.IsZero())) {
				m.hiddenUntil = now
			}
			out.Requeued++
		}
	}
	s.surface(q)
	s.signal()
	return out, nil
}

// ErrReceiptHandle means a receipt handle names no message in flight.
var ErrReceiptHandle = errors.New("receipt handle is not valid")

// changeVisibility hides the in-flight message of receipt for d from now
// (0: visible at once) and wakes the consumers. s.mu is held.
func (s *Server) changeVisibility(q *queue, receipt string, d time.Duration) error {
	m, ok := q.inflight[receipt]
	if !ok {
		return ErrReceiptHandle
	}
	m.hiddenUntil, m.changed = s.clock.Now().Add(d), true
	s.surface(q)
	s.signal()
	return nil
}

// Handler is a Lambda SQS handler with partial batch responses.
type Handler func(context.Context, events.SQSEvent) (events.SQSEventResponse, error)

// Totals sums the outcomes of a consumption.
type Totals struct {
	Batches int
	Outcome
	// TimedOut counts the invocations cut by their deadline (their whole
	// batch handed back).
	TimedOut int
	// Peak is the most handler invocations that ran at once.
	Peak int
	// Waiting is the number of messages left hidden when the consumption
	// ended: handed back and waiting out a visibility timeout.
	Waiting int
}

// ConsumeOptions are the event source mapping's settings.
type ConsumeOptions struct {
	// BatchSize is the most records a batch has (1..MaxBatch; default
	// MaxBatch).
	BatchSize int
	// Workers is the most handler invocations at once (default 1).
	Workers int
	// Timeout, when set, is each invocation's deadline (the function's
	// timeout): an invocation that answers after it was cut by it, as on
	// Lambda — its answer is ignored and its whole batch handed back
	// (ErrTimedOut). A handler that ignores its context is waited for:
	// localsqs cannot stop it as Lambda would.
	Timeout time.Duration
	// Halt, when set, is asked after each batch is settled: true stops
	// receiving (the event source mapping disabled); the batches already
	// running are settled, the rest stays on the queue.
	Halt func() bool
}

// Drain is Consume one batch of up to batchSize at a time.
func (s *Server) Drain(ctx context.Context, name string, batchSize int, h Handler) (Totals, error) {
	return s.Consume(ctx, name, ConsumeOptions{BatchSize: batchSize}, h)
}

// DrainConcurrent is Consume with up to workers invocations at once.
func (s *Server) DrainConcurrent(ctx context.Context, name string, batchSize, workers int, h Handler) (Totals, error) {
	return s.Consume(ctx, name, ConsumeOptions{BatchSize: batchSize, Workers: workers}, h)
}

// Consume plays a Lambda event source mapping on the queue: up to
// o.Workers invocations of h at once, each fed a batch of up to o.BatchSize
// as soon as one can be received, each settled with Settle. It ends when
// nothing can be received and none of its invocations runs — messages
// handed back and hidden by a visibility timeout are left waiting (Totals.
// Waiting) — or when o.Halt says so, ctx ends (its error) or the server
// closes (ErrClosed). Because every failure raises a receive count, a message
// that keeps failing reaches the dead-letter list (at once with
// RedeliverAtOnce) or waits out its visibility timeout: Consume always ends.
//
// A worker with nothing to receive while other invocations run waits for a
// signal (see the package documentation), never polls.
func (s *Server) Consume(ctx context.Context, name string, o ConsumeOptions, h Handler) (Totals, error) {
	s.mu.Lock()
	q, ok := s.queues[name]
	s.mu.Unlock()
	if !ok {
		return Totals{}, fmt.Errorf("consume %s: %w", name, ErrNoQueue)
	}
	c := &consumer{s: s, q: q, o: o, h: h}
	var wg sync.WaitGroup
	for range max(o.Workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.work(ctx)
		}()
	}
	wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.surface(q)
	c.t.Waiting = len(q.inflight)
	return c.t, c.err
}

// consumer is one Consume; its fields are guarded by the server's mutex.
type consumer struct {
	s *Server
	q *queue
	o ConsumeOptions
	h Handler

	t       Totals
	running int
	halted  bool
	err     error
}

// work runs batches until the consumption ends.
func (c *consumer) work(ctx context.Context) {
	for {
		ev, ok := c.next(ctx)
		if !ok {
			return
		}
		resp, herr, cut := c.invoke(ctx, ev)
		o, err := c.s.Settle(c.q.name, ev, resp, herr)
		halt := err == nil && c.o.Halt != nil && c.o.Halt()
		c.s.mu.Lock()
		c.running--
		c.t.Batches++
		c.t.Deleted += o.Deleted
		c.t.Requeued += o.Requeued
		c.t.DeadLettered += o.DeadLettered
		if cut {
			c.t.TimedOut++
		}
		if err != nil && c.err == nil {
			c.err = err
		}
		c.halted = c.halted || halt
		c.s.signal()
		c.s.mu.Unlock()
	}
}

// invoke runs the handler on a batch with the invocation's deadline; cut
// reports that the deadline ended it (its answer replaced by ErrTimedOut).
func (c *consumer) invoke(ctx context.Context, ev events.SQSEvent) (resp events.SQSEventResponse, herr error, cut bool) {
	ictx := ctx
	if c.o.Timeout > 0 {
		var cancel context.CancelFunc
		ictx, cancel = context.WithTimeout(ctx, c.o.Timeout)
		defer cancel()
	}
	resp, herr = c.h(ictx, ev)
	if errors.Is(ictx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		return events.SQSEventResponse{}, ErrTimedOut, true
	}
	return resp, herr, false
}

// next returns the next batch to handle, waiting while there is none and
// other invocations of the consumer run; false when the consumption is
// over.
func (c *consumer) next(ctx context.Context) (events.SQSEvent, bool) {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		s.looks++
		switch {
		case c.err != nil || c.halted:
			return events.SQSEvent{}, false
		case s.closed:
			c.err = ErrClosed
			s.signal()
			return events.SQSEvent{}, false
		case ctx.Err() != nil:
			c.err = ctx.Err()
			s.signal()
			return events.SQSEvent{}, false
		}
		if ev := s.receive(c.q, c.o.BatchSize); len(ev.Records) > 0 {
			c.running++
			c.t.Peak = max(c.t.Peak, c.running)
			return ev, true
		}
		if c.running == 0 {
			return events.SQSEvent{}, false
		}
		// Another invocation holds a batch that may come back: wait for a
		// signal, or for the earliest visibility timeout to end.
		wake := s.wake
		var expired chan struct{}
		stop := func() bool { return false }
		if next := c.q.nextSurface(); !next.IsZero() {
			expired = make(chan struct{})
			stop = s.clock.AfterFunc(next.Sub(s.clock.Now()), func() { close(expired) })
		}
		s.mu.Unlock()
		select {
		case <-wake:
		case <-expired:
		case <-ctx.Done():
		}
		stop()
		s.mu.Lock()
	}
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
