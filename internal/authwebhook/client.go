package authwebhook

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeseed/kubeseed/internal/args"
	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/defaults"
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

// NodeClient is a Client for the node in l, at the address in its
// args/auth-webhook, presenting kube-apiserver's client certificate.
func NodeClient(l datadir.Layout) (*Client, error) {
	f, err := args.Load(l.Args(defaults.AuthWebhookComponent))
	if err != nil {
		return nil, err
	}
	o, err := ParseArgs(f, l.Vars())
	if err != nil {
		return nil, err
	}
	return NewClient(o, l.Cert("ca"), l.Cert("apiserver-auth-webhook-client"), l.Key("apiserver-auth-webhook-client"))
}

// Close drops the client's idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

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
	return health.Poll(ctx, 200*time.Millisecond, func(ctx context.Context) error {
		for _, t := range tokens {
			got, err := c.Authenticated(ctx, t)
			if err != nil {
				return err
			}
			if got != want {
				return fmt.Errorf("a token's authenticated is %v, want %v", got, want)
			}
		}
		return nil
	})
}

// WaitLoaded polls until the webhook uses the token file content whose
// SHA-256 is digest, or ctx ends.
func (c *Client) WaitLoaded(ctx context.Context, digest [sha256.Size]byte) error {
	defer c.http.CloseIdleConnections()
	want := hex.EncodeToString(digest[:])
	return health.Poll(ctx, 200*time.Millisecond, func(ctx context.Context) error {
		st, err := c.Loaded(ctx)
		switch {
		case err != nil:
			return err
		case st.Digest == want:
			return nil
		case st.Err != "":
			return fmt.Errorf("the webhook rejected the token file: %s", st.Err)
		default:
			return errors.New("the webhook still uses an older token file")
		}
	})
}

// LoadState is what the webhook says about its token file.
type LoadState struct {
	Digest string // hex SHA-256 of the content in use; "" if none
	Err    string // why the file was rejected (path:line); "" if it is in use
}

// Loaded asks the webhook which token file content it uses, or why it
// rejected the file. err is for failing to ask.
func (c *Client) Loaded(ctx context.Context) (LoadState, error) {
	url := c.base + LoadedPath
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return LoadState{}, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return LoadState{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return LoadState{}, fmt.Errorf("%s: %w", url, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return LoadState{Digest: string(body)}, nil
	case http.StatusServiceUnavailable:
		return LoadState{Err: strings.TrimSpace(string(body))}, nil
	default:
		return LoadState{}, fmt.Errorf("%s: HTTP %d: %s", url, resp.StatusCode, body)
	}
}
