package overlay

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
)

// fakeAPI serves the part of /api/v1/nodes that flannel's subnet manager
// and the overlay's informer use: list, watch (with and without initial
// events), get, and strategic-merge patch of status.
type fakeAPI struct {
	mu      sync.Mutex
	rv      int
	nodes   map[string]*corev1.Node
	events  []fakeEvent
	changed chan struct{} // closed and replaced on every change
	patches []string      // "name subresource", for assertions
	// forbidAll answers every list and watch 403, as the Node authorizer
	// does for a node's identity.
	forbidAll bool
}

type fakeEvent struct {
	rv   int
	Type string          `json:"type"`
	Obj  json.RawMessage `json:"object"`
}

func newFakeAPI(nodes ...*corev1.Node) *fakeAPI {
	f := &fakeAPI{nodes: map[string]*corev1.Node{}, changed: make(chan struct{})}
	for _, n := range nodes {
		f.rv++
		n = n.DeepCopy()
		n.TypeMeta = metav1.TypeMeta{Kind: "Node", APIVersion: "v1"}
		n.ResourceVersion = strconv.Itoa(f.rv)
		f.nodes[n.Name] = n
	}
	return f
}

// commit records n (nil: deleted) under the lock held by the caller.
func (f *fakeAPI) commit(typ, name string, n *corev1.Node) {
	f.rv++
	if n == nil {
		n = f.nodes[name]
		delete(f.nodes, name)
	} else {
		f.nodes[name] = n
	}
	n.ResourceVersion = strconv.Itoa(f.rv)
	raw, _ := json.Marshal(n)
	f.events = append(f.events, fakeEvent{rv: f.rv, Type: typ, Obj: raw})
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeAPI) update(name string, edit func(*corev1.Node)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.nodes[name].DeepCopy()
	edit(n)
	f.commit("MODIFIED", name, n)
}

func (f *fakeAPI) remove(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.commit("DELETED", name, nil)
}

func (f *fakeAPI) node(name string) *corev1.Node {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n, ok := f.nodes[name]; ok {
		return n.DeepCopy()
	}
	return nil
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/api/v1/nodes")
	parts := strings.Split(strings.Trim(rest, "/"), "/")
	switch {
	case !ok:
		f.status(w, http.StatusNotFound, "NotFound", r.URL.Path)
	case f.forbidAll && r.Method == http.MethodGet && rest == "":
		f.status(w, http.StatusForbidden, "Forbidden", `nodes is forbidden: User "system:node:node-a" cannot list resource "nodes"`)
	case r.Method == http.MethodGet && rest == "" && r.URL.Query().Get("watch") == "true":
		f.watch(w, r)
	case r.Method == http.MethodGet && rest == "":
		f.list(w)
	case r.Method == http.MethodGet && len(parts) == 1:
		if n := f.node(parts[0]); n != nil {
			writeJSON(w, http.StatusOK, n)
		} else {
			f.status(w, http.StatusNotFound, "NotFound", "nodes "+parts[0])
		}
	case r.Method == http.MethodPatch && (len(parts) == 1 || len(parts) == 2 && parts[1] == "status"):
		f.patch(w, r, parts)
	default:
		f.status(w, http.StatusMethodNotAllowed, "MethodNotAllowed", r.Method+" "+r.URL.Path)
	}
}

func (f *fakeAPI) list(w http.ResponseWriter) {
	f.mu.Lock()
	l := corev1.NodeList{TypeMeta: metav1.TypeMeta{Kind: "NodeList", APIVersion: "v1"}}
	l.ResourceVersion = strconv.Itoa(f.rv)
	for _, name := range slices.Sorted(maps.Keys(f.nodes)) {
		l.Items = append(l.Items, *f.nodes[name].DeepCopy())
	}
	f.mu.Unlock()
	writeJSON(w, http.StatusOK, l)
}

func (f *fakeAPI) watch(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	flush := func() {
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
		}
	}
	f.mu.Lock()
	cursor, _ := strconv.Atoi(q.Get("resourceVersion"))
	if q.Get("sendInitialEvents") == "true" {
		for _, name := range slices.Sorted(maps.Keys(f.nodes)) {
			raw, _ := json.Marshal(f.nodes[name])
			_ = enc.Encode(fakeEvent{Type: "ADDED", Obj: raw})
		}
		cursor = f.rv
		bm, _ := json.Marshal(corev1.Node{
			TypeMeta: metav1.TypeMeta{Kind: "Node", APIVersion: "v1"},
			ObjectMeta: metav1.ObjectMeta{ResourceVersion: strconv.Itoa(f.rv),
				Annotations: map[string]string{metav1.InitialEventsAnnotationKey: "true"}},
		})
		_ = enc.Encode(fakeEvent{Type: "BOOKMARK", Obj: bm})
	}
	f.mu.Unlock()
	flush()
	for {
		f.mu.Lock()
		var out []fakeEvent
		for _, e := range f.events {
			if e.rv > cursor {
				out = append(out, e)
				cursor = e.rv
			}
		}
		changed := f.changed
		f.mu.Unlock()
		for _, e := range out {
			if err := enc.Encode(e); err != nil {
				return
			}
		}
		flush()
		select {
		case <-r.Context().Done():
			return
		case <-changed:
		}
	}
}

func (f *fakeAPI) patch(w http.ResponseWriter, r *http.Request, parts []string) {
	if ct := r.Header.Get("Content-Type"); ct != "application/strategic-merge-patch+json" {
		f.status(w, http.StatusUnsupportedMediaType, "UnsupportedMediaType", ct)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		f.status(w, http.StatusBadRequest, "BadRequest", err.Error())
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	cur, ok := f.nodes[parts[0]]
	if !ok {
		f.status(w, http.StatusNotFound, "NotFound", "nodes "+parts[0])
		return
	}
	orig, _ := json.Marshal(cur)
	merged, err := strategicpatch.StrategicMergePatch(orig, body, corev1.Node{})
	if err != nil {
		f.status(w, http.StatusUnprocessableEntity, "Invalid", err.Error())
		return
	}
	var n corev1.Node
	if err := json.Unmarshal(merged, &n); err != nil {
		f.status(w, http.StatusUnprocessableEntity, "Invalid", err.Error())
		return
	}
	f.patches = append(f.patches, strings.Join(parts, " "))
	f.commit("MODIFIED", n.Name, &n)
	writeJSON(w, http.StatusOK, &n)
}

func (f *fakeAPI) status(w http.ResponseWriter, code int, reason, msg string) {
	writeJSON(w, code, metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure, Code: int32(code), Reason: metav1.StatusReason(reason), Message: msg,
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// writeKubeconfig points a kubeconfig at server, without credentials.
func writeKubeconfig(t *testing.T, server string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kubelet.kubeconfig")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: %q}}]
users: [{name: u, user: {}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`, server)
	if err := os.WriteFile(p, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
