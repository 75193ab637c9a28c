package authwebhook

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"

	"github.com/kubeseed/kubeseed/internal/defaults"
	"github.com/kubeseed/kubeseed/internal/tlsutil"
)

// Paths served.
const (
	// AuthenticatePath answers TokenReviews from the token file.
	AuthenticatePath = "/authenticate"
	// DenyPath answers every SubjectAccessReview with "denied": it ends the
	// RBAC chain that `kubeseed enable rbac` writes while kube-apiserver
	// runs (see package authz).
	DenyPath = "/authorize/deny"
	// RemovedNodesPath denies the nodes `kubeseed remove-node` removed and
	// has no opinion on every other request.
	RemovedNodesPath = "/authorize/removed-nodes"
	HealthPath       = "/healthz"
	// LoadedPath answers the SHA-256 (hex) of the token file content in
	// use, so `kubeseed token remove` can wait for a reload: the file may
	// hold only digests, which it cannot present as tokens. While the file
	// is rejected it answers 503 with the reason (path:line), for `kubeseed
	// status`.
	LoadedPath = "/loaded"
)

// DenyReason is what a user denied by the deny webhook reads in the 403.
const DenyReason = "RBAC is enabled and no Role, ClusterRole or Node rule allows this"

// maxReviewBytes bounds a TokenReview request body.
const maxReviewBytes = 1 << 20

// Config is what the server needs; Options (flags) turn into it.
type Config struct {
	Addr           string // host:port to listen on
	CertFile       string
	KeyFile        string
	ClientCAFile   string
	AllowedClients []string // client certificate CNs that may ask
	ReloadInterval time.Duration
	// Removed says whether a node was removed from the cluster; nil means
	// none was.
	Removed func(nodeName string) bool
}

// Server is the webhook: mutual TLS, then TokenReviews answered from Store.
type Server struct {
	cfg   Config
	store *Store
	tls   *tls.Config
	srv   *http.Server
	ln    net.Listener
}

// New loads the certificates and returns a server for store.
func New(cfg Config, store *Store) (*Server, error) {
	cert, err := tlsutil.NewServingCert(cfg.CertFile, cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(cfg.ClientCAFile)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", cfg.ClientCAFile, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s: no certificate", cfg.ClientCAFile)
	}
	if len(cfg.AllowedClients) == 0 {
		return nil, errors.New("no allowed client names")
	}
	allowed := slices.Clone(cfg.AllowedClients)
	s := &Server{cfg: cfg, store: store}
	s.tls = &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: tlsutil.CipherSuites(defaults.TLSCipherSuites),
		// Re-read on change: certificate renewal replaces the .crt live.
		GetCertificate: cert.GetCertificate,
		ClientAuth:     tls.RequireAndVerifyClientCert,
		ClientCAs:      pool,
		// Every holder of a cluster-CA client certificate (each add-user
		// user) passes the chain check; only kube-apiserver may probe tokens.
		VerifyPeerCertificate: func(_ [][]byte, chains [][]*x509.Certificate) error {
			if len(chains) == 0 || len(chains[0]) == 0 {
				return errors.New("no verified client certificate")
			}
			if cn := chains[0][0].Subject.CommonName; !slices.Contains(allowed, cn) {
				return fmt.Errorf("client %q may not use the token webhook", cn)
			}
			return nil
		},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+AuthenticatePath, s.authenticate)
	mux.HandleFunc("POST "+DenyPath, s.deny)
	mux.HandleFunc("POST "+RemovedNodesPath, s.removedNodes)
	mux.HandleFunc("GET "+LoadedPath, func(w http.ResponseWriter, _ *http.Request) {
		if err := store.Err(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		if d, ok := store.Active(); ok {
			_, _ = io.WriteString(w, hex.EncodeToString(d[:]))
		}
	})
	mux.HandleFunc("GET "+HealthPath, func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	})
	s.srv = &http.Server{
		Handler:           mux,
		TLSConfig:         s.tls,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
	}
	return s, nil
}

// Listen binds the port, so a clash is reported before anything else runs.
func (s *Server) Listen() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("token webhook: %w", err)
	}
	s.ln = ln
	return nil
}

// Addr is the bound address (after Listen).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve answers requests and reloads the token file every ReloadInterval
// until ctx ends or the server fails. Once ctx ends it stops listening
// and lets requests in flight finish, for at most drainTimeout.
func (s *Server) Serve(ctx context.Context) error {
	go s.reloadLoop(ctx)
	drained := make(chan error, 1)
	stop := context.AfterFunc(ctx, func() {
		drainCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drainTimeout)
		defer cancel()
		drained <- s.srv.Shutdown(drainCtx)
	})
	defer stop()
	// The certificate comes from TLSConfig; ServeTLS also enables HTTP/2.
	err := s.srv.ServeTLS(s.ln, "", "")
	if errors.Is(err, http.ErrServerClosed) {
		return <-drained
	}
	return err
}

// drainTimeout bounds how long Serve waits for requests in flight: reviews
// are answered from memory, so a longer one is a stuck client.
const drainTimeout = 5 * time.Second

func (s *Server) reloadLoop(ctx context.Context) {
	log := klog.FromContext(ctx)
	t := time.NewTicker(s.cfg.ReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		changed, err := s.store.Reload()
		switch {
		case err != nil:
			log.Error(err, "Token file rejected: no token authenticates until it is fixed (X.509 client certificates still work). It is read again when it changes", "file", s.store.Path())
		case changed:
			log.Info("Reloaded the token file", "file", s.store.Path(), "tokens", s.store.Len())
		}
	}
}

func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) {
	var review authnv1.TokenReview
	dec := json.NewDecoder(io.LimitReader(r.Body, maxReviewBytes))
	if err := dec.Decode(&review); err != nil {
		http.Error(w, "bad TokenReview: "+err.Error(), http.StatusBadRequest)
		return
	}
	want := authnv1.SchemeGroupVersion.String()
	if review.APIVersion != want || review.Kind != "TokenReview" {
		http.Error(w, fmt.Sprintf("expected a %s TokenReview, got %s %s (set --authentication-token-webhook-version=v1)", want, review.APIVersion, review.Kind), http.StatusBadRequest)
		return
	}
	resp := authnv1.TokenReview{
		TypeMeta: metav1.TypeMeta{APIVersion: want, Kind: "TokenReview"},
	}
	// Static tokens are valid for the apiserver's own audiences only; an
	// empty status.audiences tells the apiserver exactly that.
	if u, ok := s.store.Authenticate(review.Spec.Token); ok {
		resp.Status.Authenticated = true
		resp.Status.User = u
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(&resp)
}

func (s *Server) deny(w http.ResponseWriter, r *http.Request) {
	s.answerReview(w, r, func(authzv1.SubjectAccessReviewSpec) authzv1.SubjectAccessReviewStatus {
		return authzv1.SubjectAccessReviewStatus{Allowed: false, Denied: true, Reason: DenyReason}
	})
}

// nodeUserPrefix starts every node's user name, as the Node authorizer
// reads it.
const nodeUserPrefix = "system:node:"

func (s *Server) removedNodes(w http.ResponseWriter, r *http.Request) {
	s.answerReview(w, r, func(spec authzv1.SubjectAccessReviewSpec) authzv1.SubjectAccessReviewStatus {
		name, isNode := strings.CutPrefix(spec.User, nodeUserPrefix)
		if isNode && s.cfg.Removed != nil && s.cfg.Removed(name) {
			return authzv1.SubjectAccessReviewStatus{Denied: true, Reason: fmt.Sprintf(
				"node %s was removed from the cluster (kubeseed remove-node); reset it and join it again", name)}
		}
		return authzv1.SubjectAccessReviewStatus{} // no opinion
	})
}

// answerReview decodes a v1 SubjectAccessReview and answers decide's status.
func (s *Server) answerReview(w http.ResponseWriter, r *http.Request, decide func(authzv1.SubjectAccessReviewSpec) authzv1.SubjectAccessReviewStatus) {
	var review authzv1.SubjectAccessReview
	dec := json.NewDecoder(io.LimitReader(r.Body, maxReviewBytes))
	if err := dec.Decode(&review); err != nil {
		http.Error(w, "bad SubjectAccessReview: "+err.Error(), http.StatusBadRequest)
		return
	}
	want := authzv1.SchemeGroupVersion.String()
	if review.APIVersion != want || review.Kind != "SubjectAccessReview" {
		http.Error(w, fmt.Sprintf("expected a %s SubjectAccessReview, got %s %s (set subjectAccessReviewVersion: v1)", want, review.APIVersion, review.Kind), http.StatusBadRequest)
		return
	}
	resp := authzv1.SubjectAccessReview{
		TypeMeta: metav1.TypeMeta{APIVersion: want, Kind: "SubjectAccessReview"},
		Status:   decide(review.Spec),
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(&resp)
}
