package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/kubeseed/kubeseed/internal/cluster"
	"github.com/kubeseed/kubeseed/internal/defaults"
	"github.com/kubeseed/kubeseed/internal/jointoken"
	"github.com/kubeseed/kubeseed/internal/pki"
	"github.com/kubeseed/kubeseed/internal/tlsutil"
)

// maxRequestBytes bounds a request body: three CSRs fit many times over.
const maxRequestBytes = 64 << 10

// reservationHold is how long a join may take between its request and its
// completion before the token's use is free again.
const reservationHold = 10 * time.Minute

// DefaultWorkerCertLifetime is short: a removed worker's certificates
// cannot be revoked in kube-apiserver, so they must die on their own.
const DefaultWorkerCertLifetime = 90 * 24 * time.Hour

// Config is what the agent needs.
type Config struct {
	Addr     string // host:port
	CertFile string // serving certificate, signed by the cluster CA
	KeyFile  string
	CA       *pki.KeyPair // the cluster CA: verifies clients, signs workers' CSRs
	Tokens   *jointoken.Store
	// Removed is the record of removed nodes; a join under a removed name
	// takes the name off it.
	Removed *cluster.RemovedNodes
	Kube    kubernetes.Interface
	Cluster Cluster
	// Membership, if set, lets control planes join.
	Membership *Membership
	// Version is this node's Kubernetes version; joiners must match it.
	Version string
	// WorkerCertLifetime bounds the certificates signed for workers.
	WorkerCertLifetime time.Duration
	// MaxFailures failed attempts per source address per minute.
	MaxFailures int
	Now         func() time.Time
}

// Server is the cluster agent.
type Server struct {
	cfg     Config
	limiter *failureLimiter
	// renewals has its own count, so a worker that keeps failing to renew
	// does not lock joins out of its address, nor the other way round.
	renewals *failureLimiter
	srv      *http.Server
	ln       net.Listener
}

// New returns an agent serving cfg; Listen binds it.
func New(cfg Config) (*Server, error) {
	if cfg.CA == nil || cfg.CA.Cert == nil || cfg.CA.Key == nil {
		return nil, errors.New("cluster agent: the cluster CA certificate and key are needed")
	}
	if cfg.Tokens == nil || cfg.Kube == nil {
		return nil, errors.New("cluster agent: no token store or Kubernetes client")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxFailures <= 0 {
		cfg.MaxFailures = 5
	}
	if cfg.WorkerCertLifetime <= 0 {
		cfg.WorkerCertLifetime = DefaultWorkerCertLifetime
	}
	cert, err := tlsutil.NewServingCert(cfg.CertFile, cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cfg.CA.Cert)
	s := &Server{cfg: cfg, limiter: newFailureLimiter(cfg.MaxFailures, time.Minute, cfg.Now),
		renewals: newFailureLimiter(cfg.MaxFailures, time.Minute, cfg.Now)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+HealthPath, func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	mux.HandleFunc("POST "+JoinPath, s.join)
	mux.HandleFunc("POST "+CompletePath, s.complete)
	mux.HandleFunc("POST "+RenewPath, s.renew)
	mux.HandleFunc("POST "+LeavePath, s.leave)
	s.srv = &http.Server{
		Handler: mux,
		TLSConfig: &tls.Config{
			MinVersion:   tls.VersionTLS12,
			CipherSuites: tlsutil.CipherSuites(defaults.TLSCipherSuites),
			// The chain ends with the CA, which a joiner pins by hash.
			GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
				c, err := cert.GetCertificate(hello)
				if err != nil {
					return nil, err
				}
				chain := *c
				chain.Certificate = append(append([][]byte{}, c.Certificate...), cfg.CA.Cert.Raw)
				return &chain, nil
			},
			// A joiner has no certificate yet; endpoints other than the
			// join itself check the verified one.
			ClientAuth: tls.VerifyClientCertIfGiven,
			ClientCAs:  pool,
		},
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
	}
	return s, nil
}

// Listen binds the address.
func (s *Server) Listen() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("cluster agent: listen on %s: %w", s.cfg.Addr, err)
	}
	s.ln = ln
	return nil
}

// Addr is the bound address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve answers until ctx ends.
func (s *Server) Serve(ctx context.Context) error {
	go func() {
		<-ctx.Done()
		shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = s.srv.Shutdown(shutCtx)
	}()
	if err := s.srv.ServeTLS(s.ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// refuse writes an ErrorResponse.
func refuse(w http.ResponseWriter, status int, kind, format string, a ...any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(ErrorResponse{Kind: kind, Message: fmt.Sprintf(format, a...)})
}

func sourceIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (s *Server) join(w http.ResponseWriter, r *http.Request) {
	log := klog.FromContext(r.Context()).WithValues("source", sourceIP(r))
	src := sourceIP(r)
	if ok, wait := s.limiter.Allowed(src); !ok {
		w.Header().Set("Retry-After", fmt.Sprint(int(wait.Seconds())+1))
		refuse(w, http.StatusTooManyRequests, KindLimited, "too many failed join attempts from %s; try again in %s", src, wait.Round(time.Second))
		return
	}
	var req JoinRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, maxRequestBytes)).Decode(&req); err != nil {
		s.limiter.Fail(src)
		refuse(w, http.StatusBadRequest, KindRequest, "malformed join request: %v", err)
		return
	}
	tok, err := jointoken.Parse(req.Token)
	if err != nil {
		s.limiter.Fail(src)
		refuse(w, http.StatusUnauthorized, KindToken, "%v", err)
		return
	}
	log = log.WithValues("token", tok.ID, "node", req.NodeName, "role", req.Role)
	// Everything a request alone can get wrong is checked before the
	// token is touched, so a bad request never holds a use of it.
	var csrs map[string]*x509.CertificateRequest
	switch req.Role {
	case jointoken.Worker:
		if csrs, err = parseCSRs(req.CSRs); err != nil {
			refuse(w, http.StatusBadRequest, KindRequest, "%v", err)
			return
		}
	case jointoken.ControlPlane:
		if len(req.CSRs) > 0 {
			refuse(w, http.StatusBadRequest, KindRequest, "a control plane sends no CSRs: it issues its own certificates")
			return
		}
	default:
		refuse(w, http.StatusBadRequest, KindRequest, "role %q: want %q or %q", req.Role, jointoken.Worker, jointoken.ControlPlane)
		return
	}
	if errs := validation.IsDNS1123Subdomain(req.NodeName); len(errs) > 0 {
		refuse(w, http.StatusBadRequest, KindRequest, "node name %q: %s", req.NodeName, strings.Join(errs, "; "))
		return
	}
	if req.Version != s.cfg.Version {
		refuse(w, http.StatusConflict, KindPreflight, "the joining node runs Kubernetes %s and this cluster %s: run the same kubeseed on both", req.Version, s.cfg.Version)
		return
	}
	attempt, _, err := s.cfg.Tokens.Reserve(r.Context(), tok, req.Role, req.NodeName, reservationHold)
	if err != nil {
		if errors.Is(err, jointoken.ErrUnknown) || errors.Is(err, jointoken.ErrExpired) || errors.Is(err, jointoken.ErrRole) || errors.Is(err, jointoken.ErrUsedUp) {
			s.limiter.Fail(src)
			log.Info("Refused a join: bad token", "reason", err)
			refuse(w, http.StatusUnauthorized, KindToken, "%v", err)
			return
		}
		log.Error(err, "Could not reserve a join token")
		refuse(w, http.StatusServiceUnavailable, KindInternal, "the token store is unavailable: %v", err)
		return
	}
	// From here on every refusal hands the use back.
	resp, status, kind, err := s.admit(r.Context(), req, csrs, src, localIP(r))
	if err != nil {
		if rerr := s.cfg.Tokens.Release(context.WithoutCancel(r.Context()), tok.ID, attempt); rerr != nil {
			log.Error(rerr, "Could not release a join token's reservation; it expires on its own", "hold", reservationHold)
		}
		var busy busyError
		if errors.As(err, &busy) {
			w.Header().Set("Retry-After", "3")
			refuse(w, http.StatusServiceUnavailable, KindBusy, "%v", err)
			return
		}
		log.Info("Refused a join", "reason", err)
		refuse(w, status, kind, "%v", err)
		return
	}
	resp.TokenID, resp.Attempt = tok.ID, attempt
	log.Info("Admitted a node; the token is used once it reports Ready", "nodeIP", src)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

// localIP is the address a request came in on.
func localIP(r *http.Request) string {
	addr, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return ""
	}
	host, _, err := net.SplitHostPort(addr.String())
	if err != nil {
		return ""
	}
	return host
}

// admit checks the cluster side, then signs a worker's certificates or
// adds a control plane to etcd.
func (s *Server) admit(ctx context.Context, req JoinRequest, csrs map[string]*x509.CertificateRequest, nodeIP, ownIP string) (*JoinResponse, int, string, error) {
	_, err := s.cfg.Kube.CoreV1().Nodes().Get(ctx, req.NodeName, metav1.GetOptions{})
	switch {
	case err == nil:
		return nil, http.StatusConflict, KindPreflight, fmt.Errorf("a node named %q is already in this cluster: join with another --node-name, or run `kubeseed remove-node %s` on a control-plane node first", req.NodeName, req.NodeName)
	case !apierrors.IsNotFound(err):
		return nil, http.StatusServiceUnavailable, KindInternal, fmt.Errorf("check the node name: %w", err)
	}
	// Two nodes with one InternalIP would share the overlay's VXLAN address
	// and each other's kubelet serving name.
	nodes, err := s.cfg.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, http.StatusServiceUnavailable, KindInternal, fmt.Errorf("check the node address: %w", err)
	}
	for _, n := range nodes.Items {
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP && a.Address == nodeIP {
				return nil, http.StatusConflict, KindPreflight, fmt.Errorf("node %q already has the address %s this join comes from: join from another address, or run `kubeseed remove-node %s` on a control-plane node first", n.Name, nodeIP, n.Name)
			}
		}
	}
	apiservers, err := cluster.APIServers(ctx, s.cfg.Kube)
	if err != nil {
		return nil, http.StatusServiceUnavailable, KindInternal, err
	}
	var certs map[string][]byte
	var cp *ControlPlaneJoin
	if req.Role == jointoken.ControlPlane {
		var status int
		var kind string
		if cp, status, kind, err = s.admitControlPlane(ctx, req, nodeIP, ownIP); err != nil {
			return nil, status, kind, err
		}
	} else if certs, err = s.signWorker(req.NodeName, nodeIP, csrs); err != nil {
		return nil, http.StatusInternalServerError, KindInternal, err
	}
	// A token holder joins a node under a removed name: the name is good
	// again (README: a removed machine that kept its certificates could
	// use them again; join a new machine under a new name to rule it out).
	if s.cfg.Removed != nil {
		if err := s.cfg.Removed.Forget(ctx, req.NodeName); err != nil {
			return nil, http.StatusServiceUnavailable, KindInternal, err
		}
	}
	return &JoinResponse{
		NodeIP:       nodeIP,
		CA:           pki.EncodeCert(s.cfg.CA.Cert),
		Certs:        certs,
		APIServers:   apiservers,
		Cluster:      s.cfg.Cluster,
		ControlPlane: cp,
	}, 0, "", nil
}

// signWorker signs a worker's CSRs, at join and at every renewal alike:
// each CSR gives only its public key; the subjects come from the table and
// the node's name, the serving certificate's SANs from the name and nodeIP
// (the address the agent sees the node at), and the lifetime is the
// worker's.
func (s *Server) signWorker(node, nodeIP string, csrs map[string]*x509.CertificateRequest) (map[string][]byte, error) {
	in := pki.Inputs{NodeName: node, HostIPs: []net.IP{net.ParseIP(nodeIP)}}
	certs := map[string][]byte{}
	now := s.cfg.Now()
	for _, name := range WorkerCSRs {
		spec, ok := pki.Lookup(name)
		if !ok {
			return nil, fmt.Errorf("no certificate %q in the table", name)
		}
		if spec.Lifetime > s.cfg.WorkerCertLifetime {
			spec.Lifetime = s.cfg.WorkerCertLifetime
		}
		c, err := pki.SignPublicKey(spec, in, s.cfg.CA, csrs[name].PublicKey, now)
		if err != nil {
			return nil, err
		}
		certs[name] = pki.EncodeCert(c)
	}
	return certs, nil
}

// parseCSRs checks that every CSR a worker needs is there, well formed and
// self-signed by its key.
func parseCSRs(in map[string][]byte) (map[string]*x509.CertificateRequest, error) {
	out := map[string]*x509.CertificateRequest{}
	for _, name := range WorkerCSRs {
		data, ok := in[name]
		if !ok {
			return nil, fmt.Errorf("no CSR for %q (a worker sends %s)", name, strings.Join(WorkerCSRs, ", "))
		}
		block, _ := pem.Decode(data)
		if block == nil || block.Type != "CERTIFICATE REQUEST" {
			return nil, fmt.Errorf("CSR %q is not a PEM CERTIFICATE REQUEST", name)
		}
		csr, err := x509.ParseCertificateRequest(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("CSR %q: %w", name, err)
		}
		if err := csr.CheckSignature(); err != nil {
			return nil, fmt.Errorf("CSR %q: signature: %w", name, err)
		}
		out[name] = csr
	}
	if len(in) != len(WorkerCSRs) {
		return nil, fmt.Errorf("%d CSRs sent; a worker sends exactly %s", len(in), strings.Join(WorkerCSRs, ", "))
	}
	return out, nil
}

// roleLabel is the node-role label of a joined node.
func roleLabel(r jointoken.Role) string {
	if r == jointoken.ControlPlane {
		return "control-plane"
	}
	return "worker"
}

// nodeOf is the node a verified client certificate belongs to.
func nodeOf(r *http.Request) (string, bool) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		return "", false
	}
	leaf := r.TLS.VerifiedChains[0][0]
	name, ok := strings.CutPrefix(leaf.Subject.CommonName, "system:node:")
	if !ok || len(leaf.Subject.Organization) != 1 || leaf.Subject.Organization[0] != "system:nodes" {
		return "", false
	}
	return name, true
}

func (s *Server) complete(w http.ResponseWriter, r *http.Request) {
	node, ok := nodeOf(r)
	if !ok {
		refuse(w, http.StatusUnauthorized, KindRequest, "completing a join needs the new node's client certificate (system:node:<name>) from the cluster CA")
		return
	}
	var req CompleteRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, maxRequestBytes)).Decode(&req); err != nil {
		refuse(w, http.StatusBadRequest, KindRequest, "malformed request: %v", err)
		return
	}
	log := klog.FromContext(r.Context()).WithValues("node", node, "token", req.TokenID)
	role, err := s.reservedFor(r.Context(), req, node)
	if err != nil {
		refuse(w, http.StatusForbidden, KindToken, "%v", err)
		return
	}
	if err := s.cfg.Tokens.Complete(r.Context(), req.TokenID, req.Attempt); err != nil {
		status := http.StatusConflict
		if !errors.Is(err, jointoken.ErrNotReserved) {
			status = http.StatusServiceUnavailable
		}
		refuse(w, status, KindToken, "%v", err)
		return
	}
	if _, err := s.cfg.Kube.CoreV1().Nodes().Patch(r.Context(), node, types.MergePatchType, roleLabelPatch(role), metav1.PatchOptions{}); err != nil {
		log.Error(err, "Could not label the new node", "role", role)
	}
	log.Info("A node joined; its token use is consumed", "role", role)
	w.WriteHeader(http.StatusNoContent)
}

// reservedFor checks that the reservation being completed was made for
// node, so one joined node cannot consume another's join.
func (s *Server) reservedFor(ctx context.Context, req CompleteRequest, node string) (jointoken.Role, error) {
	recs, err := s.cfg.Tokens.List(ctx)
	if err != nil {
		return "", err
	}
	for _, rec := range recs {
		if rec.ID != req.TokenID {
			continue
		}
		for _, res := range rec.Reservations {
			if res.Attempt == req.Attempt {
				if res.Node != node {
					return "", fmt.Errorf("join attempt %s is node %q's, not %q's", req.Attempt, res.Node, node)
				}
				return rec.Role, nil
			}
		}
	}
	return "", fmt.Errorf("join token %s has no attempt %s: it expired or was revoked; the node works, but the token was not used", req.TokenID, req.Attempt)
}
