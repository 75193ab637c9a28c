package authwebhook

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeseed/kubeseed/internal/health"
)

// Client asks a running webhook about tokens, as kube-apiserver does: the
// token commands use it to wait until a change is live.
type Client struct {
	url  string
	base string
	http *http.Client
}

// NewClient trusts caFile and presents kube-apiserver's client certificate.
func NewClient(o *Options, caFile, certFile, keyFile string) (*Client, error) {
	tlsCfg, err := health.ClientTLS(caFile, certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return &Client{url: o.URL(), base: o.BaseURL(), http: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg}}}, nil
}

// Authenticated reports whether the webhook accepts token now.
func (c *Client) Authenticated(ctx context.Context, token string) (bool, error) {
	body, err := json.Marshal(authnv1.TokenReview{
		TypeMeta: metav1.TypeMeta{APIVersion: authnv1.SchemeGroupVersion.String(), Kind: "TokenReview"},
		Spec:     authnv1.TokenReviewSpec{Token: token},
	})
	if err != nil {
		return false, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return false, fmt.Errorf("%s: HTTP %d: %s", c.url, resp.StatusCode, msg)
	}
	var review authnv1.TokenReview
	if err := json.NewDecoder(resp.Body).Decode(&review); err != nil {
		return false, fmt.Errorf("%s: %w", c.url, err)
	}
	return review.Status.Authenticated, nil
}

// WaitFor polls until every token's state is want, or ctx ends.
func (c *Client) WaitFor(ctx context.Context, tokens []string, want bool) error {
	defer c.http.CloseIdleConnections()
	for {
		var err error
		done := true
		for _, t := range tokens {
			var got bool
			if got, err = c.Authenticated(ctx, t); err != nil || got != want {
				done = false
				break
			}
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
			}
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// WaitLoaded polls until the webhook uses the token file content whose
// SHA-256 is digest, or ctx ends.
func (c *Client) WaitLoaded(ctx context.Context, digest [sha256.Size]byte) error {
	defer c.http.CloseIdleConnections()
	want := hex.EncodeToString(digest[:])
	var last string
	var err error
	for {
		if last, err = c.loaded(ctx); err == nil && last == want {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
			}
			return fmt.Errorf("%w: the webhook still uses an older token file", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (c *Client) loaded(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+LoadedPath, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 128))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: HTTP %d: %s", c.base+LoadedPath, resp.StatusCode, body)
	}
	return string(body), err
}
