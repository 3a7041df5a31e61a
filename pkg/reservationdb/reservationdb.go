// Package reservationdb is the repository of analysis-reservations-{stage}:
// one item per analysis key (portfolio, data date, prompt version and
// SHA-256, model, input hash), written with a conditional put before the
// model is called, so that two runs of the same analysis — an overlapping
// schedule, a manual run, a redelivered message — cannot both pay.
//
// A reservation is pending while its owner works, with a lease (the owner's
// invocation deadline) after which another run may take it over; done once
// the analysis is stored, naming it; released (deleted) when the owner
// gives up without a result worth keeping. Items expire by TTL.
package reservationdb

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/retry"
)

// States of a reservation.
const (
	StatePending = "pending"
	StateDone    = "done"
)

// Attribute names besides the key (deploy.AttrReservationKey) and the TTL
// (deploy.AttrExpiresAt).
const (
	AttrPortfolio  = "portfolio"
	AttrDataAsOf   = "dataAsOf"
	AttrOwner      = "owner"
	AttrState      = "state"
	AttrLeaseUntil = "leaseUntil" // N, epoch milliseconds
	AttrAnalysis   = "analysis"   // the stored analysis's timestamp (sort key)
	AttrStatus     = "status"     // the stored analysis's status
	AttrCreatedAt  = "createdAt"
)

// Reservation is one item.
type Reservation struct {
	Key       string
	Portfolio string
	DataAsOf  string
	// Owner identifies the run holding it (an invocation id).
	Owner string
	State string
	// LeaseUntil is when a pending reservation's owner is presumed dead: it
	// may then be taken over.
	LeaseUntil time.Time
	// Analysis and Status name the stored analysis of a done reservation.
	Analysis, Status string
	CreatedAt        time.Time
	// ExpiresAt is the TTL.
	ExpiresAt time.Time
}

// KeyOf is the key of an analysis: the hex SHA-256 of its parts, each
// followed by a NUL, so that no two part lists collide.
func KeyOf(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// DynamoDBAPI is the part of the DynamoDB client the repository uses.
type DynamoDBAPI interface {
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
}

var _ DynamoDBAPI = (*dynamodb.Client)(nil)

// Store reads and writes the reservations table.
type Store struct {
	client DynamoDBAPI
	table  string
	// Now is the clock the leases are compared with (time.Now if nil).
	Now func() time.Time
}

// New returns a store over the table (deploy.AnalysisReservations.Name(stage)).
func New(client DynamoDBAPI, table string) *Store {
	return &Store{client: client, table: table}
}

// ErrNotOwner means the reservation is no longer the caller's: its lease
// ran out and another run took it over (or it is gone).
var ErrNotOwner = errors.New("the reservation is held by another run")

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Reserve writes r as pending if no reservation of its key exists or the
// existing one is pending with an expired lease (its owner died). It
// reports whether r was written; if not, it returns the reservation that
// holds the key.
func (s *Store) Reserve(ctx context.Context, r Reservation) (Reservation, bool, error) {
	r.State = StatePending
	for range 3 {
		_, err := s.client.PutItem(ctx, &dynamodb.PutItemInput{
			TableName:           aws.String(s.table),
			Item:                marshal(r),
			ConditionExpression: aws.String("attribute_not_exists(#k) OR (#state = :pending AND #lease < :now)"),
			ExpressionAttributeNames: map[string]string{
				"#k": deploy.AttrReservationKey, "#state": AttrState, "#lease": AttrLeaseUntil,
			},
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":pending": str(StatePending), ":now": millis(s.now()),
			},
		})
		var cond *types.ConditionalCheckFailedException
		switch {
		case err == nil:
			return r, true, nil
		case !errors.As(err, &cond):
			return Reservation{}, false, fmt.Errorf("reserve %s in %s: %w", r.Key, s.table, err)
		}
		held, ok, err := s.Get(ctx, r.Key)
		if err != nil {
			return Reservation{}, false, err
		}
		if ok {
			return held, false, nil
		}
		// Released between the put and the read: try again.
	}
	return Reservation{}, false, fmt.Errorf("reserve %s in %s: %w", r.Key, s.table, retry.Transient(errors.New("the reservation keeps changing hands"), 0))
}

// Get reads a reservation (strongly consistent).
func (s *Store) Get(ctx context.Context, key string) (Reservation, bool, error) {
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(s.table), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{deploy.AttrReservationKey: str(key)},
	})
	if err != nil {
		return Reservation{}, false, fmt.Errorf("read reservation %s in %s: %w", key, s.table, err)
	}
	if len(out.Item) == 0 {
		return Reservation{}, false, nil
	}
	r, err := unmarshal(out.Item)
	if err != nil {
		return Reservation{}, false, fmt.Errorf("reservation %s in %s: %w", key, s.table, err)
	}
	return r, true, nil
}

// Complete marks the caller's reservation done, naming the stored analysis
// (r.Analysis, r.Status). It fails with ErrNotOwner if r.Owner no longer
// holds it.
func (s *Store) Complete(ctx context.Context, r Reservation) error {
	r.State = StateDone
	_, err := s.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(s.table), Item: marshal(r),
		ConditionExpression:       aws.String("#owner = :owner"),
		ExpressionAttributeNames:  map[string]string{"#owner": AttrOwner},
		ExpressionAttributeValues: map[string]types.AttributeValue{":owner": str(r.Owner)},
	})
	return s.ownerErr("complete", r.Key, err)
}

// Release deletes the caller's reservation so that a later run may try
// again. It fails with ErrNotOwner if owner no longer holds it.
func (s *Store) Release(ctx context.Context, key, owner string) error {
	_, err := s.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName: aws.String(s.table), Key: map[string]types.AttributeValue{deploy.AttrReservationKey: str(key)},
		ConditionExpression:       aws.String("#owner = :owner"),
		ExpressionAttributeNames:  map[string]string{"#owner": AttrOwner},
		ExpressionAttributeValues: map[string]types.AttributeValue{":owner": str(owner)},
	})
	return s.ownerErr("release", key, err)
}

func (s *Store) ownerErr(what, key string, err error) error {
	var cond *types.ConditionalCheckFailedException
	switch {
	case err == nil:
		return nil
	case errors.As(err, &cond):
		return retry.Permanent(fmt.Errorf("%s reservation %s: %w", what, key, ErrNotOwner))
	default:
		return fmt.Errorf("%s reservation %s in %s: %w", what, key, s.table, err)
	}
}

func str(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

func millis(t time.Time) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(t.UnixMilli(), 10)}
}

func marshal(r Reservation) map[string]types.AttributeValue {
	item := map[string]types.AttributeValue{
		deploy.AttrReservationKey: str(r.Key),
		AttrPortfolio:             str(r.Portfolio),
		AttrDataAsOf:              str(r.DataAsOf),
		AttrOwner:                 str(r.Owner),
		AttrState:                 str(r.State),
		AttrLeaseUntil:            millis(r.LeaseUntil),
		AttrCreatedAt:             str(r.CreatedAt.UTC().Format(time.RFC3339Nano)),
		deploy.AttrExpiresAt:      &types.AttributeValueMemberN{Value: strconv.FormatInt(r.ExpiresAt.Unix(), 10)},
	}
	if r.Analysis != "" {
		item[AttrAnalysis] = str(r.Analysis)
	}
	if r.Status != "" {
		item[AttrStatus] = str(r.Status)
	}
	return item
}

func unmarshal(m map[string]types.AttributeValue) (Reservation, error) {
	s := func(k string) string {
		if v, ok := m[k].(*types.AttributeValueMemberS); ok {
			return v.Value
		}
		return ""
	}
	n := func(k string) (int64, error) {
		v, ok := m[k].(*types.AttributeValueMemberN)
		if !ok {
			return 0, fmt.Errorf("attribute %s is not a number", k)
		}
		return strconv.ParseInt(v.Value, 10, 64)
	}
	r := Reservation{Key: s(deploy.AttrReservationKey), Portfolio: s(AttrPortfolio), DataAsOf: s(AttrDataAsOf), Owner: s(AttrOwner),
		State: s(AttrState), Analysis: s(AttrAnalysis), Status: s(AttrStatus)}
	lease, err := n(AttrLeaseUntil)
	if err != nil {
		return Reservation{}, err
	}
	r.LeaseUntil = time.UnixMilli(lease).UTC()
	if exp, err := n(deploy.AttrExpiresAt); err == nil {
		r.ExpiresAt = time.Unix(exp, 0).UTC()
	}
	if c := s(AttrCreatedAt); c != "" {
		r.CreatedAt, _ = time.Parse(time.RFC3339Nano, c)
	}
	if r.State != StatePending && r.State != StateDone {
		return Reservation{}, fmt.Errorf("state %q is not %q or %q", r.State, StatePending, StateDone)
	}
	return r, nil
}
