package localsqs

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

const jsonContentType = "application/x-amz-json-1.0"

// wireAttr is a message attribute as the JSON protocol carries it (binary
// values are base64, which encoding/json decodes into []byte).
type wireAttr struct {
	DataType         string   `json:"DataType"`
	StringValue      *string  `json:"StringValue,omitempty"`
	BinaryValue      []byte   `json:"BinaryValue,omitempty"`
	StringListValues []string `json:"StringListValues,omitempty"`
	BinaryListValues [][]byte `json:"BinaryListValues,omitempty"`
}

type sendMessageRequest struct {
	QueueURL               string              `json:"QueueUrl"`
	MessageBody            string              `json:"MessageBody"`
	DelaySeconds           int                 `json:"DelaySeconds"`
	MessageGroupID         string              `json:"MessageGroupId"`
	MessageDeduplicationID string              `json:"MessageDeduplicationId"`
	MessageAttributes      map[string]wireAttr `json:"MessageAttributes"`
}

type batchEntry struct {
	ID                     string              `json:"Id"`
	MessageBody            string              `json:"MessageBody"`
	DelaySeconds           int                 `json:"DelaySeconds"`
	MessageGroupID         string              `json:"MessageGroupId"`
	MessageDeduplicationID string              `json:"MessageDeduplicationId"`
	MessageAttributes      map[string]wireAttr `json:"MessageAttributes"`
}

type sendMessageBatchRequest struct {
	QueueURL string       `json:"QueueUrl"`
	Entries  []batchEntry `json:"Entries"`
}

type batchSuccess struct {
	ID               string `json:"Id"`
	MessageID        string `json:"MessageId"`
	MD5OfMessageBody string `json:"MD5OfMessageBody"`
	SequenceNumber   string `json:"SequenceNumber,omitempty"`
}

type batchFailure struct {
	ID          string `json:"Id"`
	SenderFault bool   `json:"SenderFault"`
	Code        string `json:"Code"`
	Message     string `json:"Message"`
}

// maxRequestBytes bounds a request body: ten maximal messages plus envelope.
const maxRequestBytes = MaxBatch*MaxMessageBytes + 64*1024

// ServeHTTP implements the SQS JSON protocol subset: POST / with
// X-Amz-Target AmazonSQS.SendMessage, AmazonSQS.SendMessageBatch,
// AmazonSQS.GetQueueUrl, AmazonSQS.ChangeMessageVisibility or
// AmazonSQS.ChangeMessageVisibilityBatch.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeError(w, http.StatusMethodNotAllowed, &apiError{"UnsupportedOperation", "only POST is supported", true})
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, jsonContentType) {
		writeError(w, http.StatusBadRequest, &apiError{"InvalidParameterValue", "Content-Type must be " + jsonContentType, true})
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBytes+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, &apiError{"InvalidParameterValue", "read request: " + err.Error(), true})
		return
	}
	if len(body) > maxRequestBytes {
		writeError(w, http.StatusBadRequest, &apiError{"BatchRequestTooLong", "request too large", true})
		return
	}
	target := r.Header.Get("X-Amz-Target")
	switch target {
	case "AmazonSQS.SendMessage":
		s.handleSend(w, body)
	case "AmazonSQS.SendMessageBatch":
		s.handleSendBatch(w, body)
	case "AmazonSQS.GetQueueUrl":
		s.handleGetQueueURL(w, body)
	case "AmazonSQS.ChangeMessageVisibility":
		s.handleChangeVisibility(w, body)
	case "AmazonSQS.ChangeMessageVisibilityBatch":
		s.handleChangeVisibilityBatch(w, body)
	default:
		writeError(w, http.StatusBadRequest, &apiError{"UnsupportedOperation", fmt.Sprintf("operation %q is not supported by localsqs", target), true})
	}
}

func (s *Server) queueFor(rawURL string) (*queue, *apiError) {
	u, err := url.Parse(rawURL)
	if err != nil || rawURL == "" {
		return nil, &apiError{"InvalidAddress", "The address " + rawURL + " is not valid for this endpoint.", true}
	}
	name := path.Base(u.Path)
	q, ok := s.queues[name]
	if !ok {
		return nil, &apiError{"QueueDoesNotExist", "The specified queue does not exist.", true}
	}
	return q, nil
}

func (s *Server) handleSend(w http.ResponseWriter, body []byte) {
	var req sendMessageRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, &apiError{"InvalidParameterValue", "malformed request: " + err.Error(), true})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q, aerr := s.queueFor(req.QueueURL)
	if aerr != nil {
		writeError(w, http.StatusBadRequest, aerr)
		return
	}
	res, aerr := s.send(q, sendInput{body: req.MessageBody, groupID: req.MessageGroupID, dedupID: req.MessageDeduplicationID, attrs: toEventAttrs(req.MessageAttributes)})
	if aerr != nil {
		writeError(w, http.StatusBadRequest, aerr)
		return
	}
	writeJSON(w, map[string]string{"MessageId": res.messageID, "MD5OfMessageBody": res.md5, "SequenceNumber": res.seq})
}

func (s *Server) handleSendBatch(w http.ResponseWriter, body []byte) {
	var req sendMessageBatchRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, &apiError{"InvalidParameterValue", "malformed request: " + err.Error(), true})
		return
	}
	switch {
	case len(req.Entries) == 0:
		writeError(w, http.StatusBadRequest, &apiError{"EmptyBatchRequest", "There should be at least one SendMessageBatchRequestEntry in the request.", true})
		return
	case len(req.Entries) > MaxBatch:
		writeError(w, http.StatusBadRequest, &apiError{"TooManyEntriesInBatchRequest", fmt.Sprintf("Maximum number of entries per request are %d. You have sent %d.", MaxBatch, len(req.Entries)), true})
		return
	}
	seen := map[string]bool{}
	for _, e := range req.Entries {
		if e.ID == "" {
			writeError(w, http.StatusBadRequest, &apiError{"InvalidBatchEntryId", "A batch entry id can only contain alphanumeric characters, hyphens and underscores.", true})
			return
		}
		if seen[e.ID] {
			writeError(w, http.StatusBadRequest, &apiError{"BatchEntryIdsNotDistinct", "Id " + e.ID + " repeated.", true})
			return
		}
		seen[e.ID] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q, aerr := s.queueFor(req.QueueURL)
	if aerr != nil {
		writeError(w, http.StatusBadRequest, aerr)
		return
	}
	out := struct {
		Successful []batchSuccess `json:"Successful"`
		Failed     []batchFailure `json:"Failed"`
	}{Successful: []batchSuccess{}, Failed: []batchFailure{}}
	for _, e := range req.Entries {
		res, aerr := s.send(q, sendInput{body: e.MessageBody, groupID: e.MessageGroupID, dedupID: e.MessageDeduplicationID, attrs: toEventAttrs(e.MessageAttributes)})
		if aerr != nil {
			out.Failed = append(out.Failed, batchFailure{ID: e.ID, SenderFault: aerr.sender, Code: aerr.code, Message: aerr.msg})
			continue
		}
		out.Successful = append(out.Successful, batchSuccess{ID: e.ID, MessageID: res.messageID, MD5OfMessageBody: res.md5, SequenceNumber: res.seq})
	}
	writeJSON(w, out)
}

func (s *Server) handleGetQueueURL(w http.ResponseWriter, body []byte) {
	var req struct {
		QueueName string `json:"QueueName"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, &apiError{"InvalidParameterValue", "malformed request: " + err.Error(), true})
		return
	}
	s.mu.Lock()
	_, ok := s.queues[req.QueueName]
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusBadRequest, &apiError{"QueueDoesNotExist", "The specified queue does not exist.", true})
		return
	}
	writeJSON(w, map[string]string{"QueueUrl": s.QueueURL(req.QueueName)})
}

// maxVisibilitySeconds is SQS's bound on a visibility timeout (12 hours).
const maxVisibilitySeconds = 43200

type visibilityEntry struct {
	ID                string `json:"Id"`
	ReceiptHandle     string `json:"ReceiptHandle"`
	VisibilityTimeout *int   `json:"VisibilityTimeout"`
}

func (s *Server) handleChangeVisibility(w http.ResponseWriter, body []byte) {
	var req struct {
		QueueURL string `json:"QueueUrl"`
		visibilityEntry
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, &apiError{"InvalidParameterValue", "malformed request: " + err.Error(), true})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q, aerr := s.queueFor(req.QueueURL)
	if aerr == nil {
		aerr = s.applyVisibility(q, req.visibilityEntry)
	}
	if aerr != nil {
		writeError(w, http.StatusBadRequest, aerr)
		return
	}
	writeJSON(w, map[string]string{})
}

func (s *Server) handleChangeVisibilityBatch(w http.ResponseWriter, body []byte) {
	var req struct {
		QueueURL string            `json:"QueueUrl"`
		Entries  []visibilityEntry `json:"Entries"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, &apiError{"InvalidParameterValue", "malformed request: " + err.Error(), true})
		return
	}
	switch {
	case len(req.Entries) == 0:
		writeError(w, http.StatusBadRequest, &apiError{"EmptyBatchRequest", "There should be at least one ChangeMessageVisibilityBatchRequestEntry in the request.", true})
		return
	case len(req.Entries) > MaxBatch:
		writeError(w, http.StatusBadRequest, &apiError{"TooManyEntriesInBatchRequest", fmt.Sprintf("Maximum number of entries per request are %d. You have sent %d.", MaxBatch, len(req.Entries)), true})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q, aerr := s.queueFor(req.QueueURL)
	if aerr != nil {
		writeError(w, http.StatusBadRequest, aerr)
		return
	}
	out := struct {
		Successful []map[string]string `json:"Successful"`
		Failed     []batchFailure      `json:"Failed"`
	}{Successful: []map[string]string{}, Failed: []batchFailure{}}
	seen := map[string]bool{}
	for _, e := range req.Entries {
		if e.ID == "" || seen[e.ID] {
			writeError(w, http.StatusBadRequest, &apiError{"BatchEntryIdsNotDistinct", "entry ids must be present and distinct", true})
			return
		}
		seen[e.ID] = true
	}
	for _, e := range req.Entries {
		if aerr := s.applyVisibility(q, e); aerr != nil {
			out.Failed = append(out.Failed, batchFailure{ID: e.ID, SenderFault: aerr.sender, Code: aerr.code, Message: aerr.msg})
			continue
		}
		out.Successful = append(out.Successful, map[string]string{"Id": e.ID})
	}
	writeJSON(w, out)
}

// applyVisibility changes one in-flight message's visibility. s.mu is held.
func (s *Server) applyVisibility(q *queue, e visibilityEntry) *apiError {
	switch {
	case e.ReceiptHandle == "":
		return &apiError{"MissingParameter", "The request must contain the parameter ReceiptHandle.", true}
	case e.VisibilityTimeout == nil:
		return &apiError{"MissingParameter", "The request must contain the parameter VisibilityTimeout.", true}
	case *e.VisibilityTimeout < 0 || *e.VisibilityTimeout > maxVisibilitySeconds:
		return &apiError{"InvalidParameterValue", fmt.Sprintf("Value %d for parameter VisibilityTimeout is invalid. Reason: Must be between 0 and 43200.", *e.VisibilityTimeout), true}
	}
	if err := s.changeVisibility(q, e.ReceiptHandle, time.Duration(*e.VisibilityTimeout)*time.Second); err != nil {
		return &apiError{"ReceiptHandleIsInvalid", "The input receipt handle \"" + clipHandle(e.ReceiptHandle) + "\" is not a valid receipt handle.", true}
	}
	return nil
}

func clipHandle(h string) string {
	if len(h) > 60 {
		return h[:60] + "…"
	}
	return h
}

func toEventAttrs(in map[string]wireAttr) map[string]events.SQSMessageAttribute {
	if len(in) == 0 {
		return nil
	}
	out := make(map[string]events.SQSMessageAttribute, len(in))
	for k, v := range in {
		out[k] = events.SQSMessageAttribute{DataType: v.DataType, StringValue: v.StringValue, BinaryValue: v.BinaryValue,
			StringListValues: v.StringListValues, BinaryListValues: v.BinaryListValues}
	}
	return out
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", jsonContentType)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers in the JSON protocol's error shape, which the SDK maps
// to its typed errors by "__type".
func writeError(w http.ResponseWriter, status int, e *apiError) {
	w.Header().Set("Content-Type", jsonContentType)
	fault := "Sender"
	if !e.sender {
		fault = "Receiver"
	}
	w.Header().Set("X-Amzn-Query-Error", "AWS.SimpleQueueService."+e.code+";"+fault)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": "com.amazonaws.sqs#" + e.code, "message": e.msg})
}
