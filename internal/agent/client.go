package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/kubeseed/kubeseed/internal/jointoken"
)

// Client talks to a cluster agent whose CA is pinned by hash: nothing is
// sent before the agent has shown a certificate chain to that CA.
type Client struct {
	addr string
	http *http.Client
}

// NewClient pins the agent at addr to caHash. cert, if given, is presented
// (a joined node's client certificate).
func NewClient(addr, caHash string, cert *tls.Certificate) *Client {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The pin replaces the usual chain check against system roots.
		InsecureSkipVerify: true, //nolint:gosec // VerifyConnection checks the chain against the pinned CA
		VerifyConnection:   jointoken.VerifyPinned(caHash),
	}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &Client{addr: addr, http: &http.Client{
		Timeout:   60 * time.Second,
		Transport: &http.Transport{TLSClientConfig: cfg, TLSHandshakeTimeout: 10 * time.Second},
	}}
}

// RefusedError is the agent's refusal.
type RefusedError struct {
	Status int
	ErrorResponse
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("the cluster agent refused (%s): %s", e.Kind, e.Message)
}

func (c *Client) post(ctx context.Context, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+c.addr+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("reach the cluster agent at %s: %w", c.addr, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read the cluster agent's answer: %w", err)
	}
	if resp.StatusCode >= 300 {
		var e ErrorResponse
		if json.Unmarshal(data, &e) != nil || e.Message == "" {
			e = ErrorResponse{Kind: KindInternal, Message: fmt.Sprintf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(data))}
		}
		return &RefusedError{Status: resp.StatusCode, ErrorResponse: e}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("the cluster agent's answer: %w", err)
	}
	return nil
}

// Join asks to join.
func (c *Client) Join(ctx context.Context, req JoinRequest) (*JoinResponse, error) {
	var resp JoinResponse
	if err := c.post(ctx, JoinPath, req, &resp); err != nil {
		return nil, err
	}
	if len(resp.CA) == 0 || len(resp.APIServers) == 0 {
		return nil, errors.New("the cluster agent's answer lacks the CA or the apiservers")
	}
	return &resp, nil
}

// joinQueueLimit bounds a join's wait for its turn: a stalled learner is
// removed after learnerStall, so a longer wait means something is wrong.
const joinQueueLimit = learnerStall + 5*time.Minute

// JoinQueued is Join that waits its turn while the agent answers busy
// (another control plane is joining), telling progress why it waits.
func (c *Client) JoinQueued(ctx context.Context, req JoinRequest, progress func(string)) (*JoinResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, joinQueueLimit)
	defer cancel()
	for {
		resp, err := c.Join(ctx, req)
		var refused *RefusedError
		if err == nil || !errors.As(err, &refused) || refused.Kind != KindBusy {
			return resp, err
		}
		progress(refused.Message + " (retrying every 3 s)")
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w while waiting for its turn to join (at most %s): another join may be stuck; `kubeseed status` on a control plane shows etcd's members", ctx.Err(), joinQueueLimit)
		case <-time.After(3 * time.Second):
		}
	}
}

// Complete reports the joined node Ready, which consumes the token's use.
func (c *Client) Complete(ctx context.Context, req CompleteRequest) error {
	return c.post(ctx, CompletePath, req, nil)
}

// Renew asks for fresh certificates; c must present the node's current
// kubelet client certificate.
func (c *Client) Renew(ctx context.Context, req RenewRequest) (*RenewResponse, error) {
	var resp RenewResponse
	if err := c.post(ctx, RenewPath, req, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}
