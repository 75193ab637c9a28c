package health

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestWaitFor(t *testing.T) {
	for _, tt := range []struct {
		name    string
		serve   func(n int32, w http.ResponseWriter) // n counts requests from 1
		want    string                               // "" for success
		minReqs int32
	}{
		{"ready at once", func(_ int32, w http.ResponseWriter) { _, _ = w.Write([]byte("[+]x-controller ok")) }, "", 1},
		{"ready on the third probe", func(n int32, w http.ResponseWriter) {
			if n < 3 {
				http.Error(w, "starting", http.StatusServiceUnavailable)
				return
			}
			_, _ = w.Write([]byte("[+]x-controller ok"))
		}, "", 3},
		{"never answers 200: the last status is in the error", func(_ int32, w http.ResponseWriter) {
			http.Error(w, "etcd not ready", http.StatusServiceUnavailable)
		}, "context deadline exceeded (last: URL: HTTP 503: etcd not ready", 1},
		{"200 without what is awaited: the error says what that is", func(_ int32, w http.ResponseWriter) {
			_, _ = w.Write([]byte("[+]ping ok"))
		}, "context deadline exceeded (last: URL: no controller checks yet)", 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var reqs atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { tt.serve(reqs.Add(1), w) }))
			defer srv.Close()
			ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
			defer cancel()
			err := WaitFor(ctx, srv.URL, nil, "no controller checks yet", func(body string) bool { return strings.Contains(body, "-controller ok") })
			want := strings.ReplaceAll(tt.want, "URL", srv.URL)
			switch {
			case want == "" && err != nil:
				t.Fatalf("WaitFor: %v", err)
			case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
				t.Fatalf("WaitFor = %v, want %q", err, want)
			}
			if n := reqs.Load(); n < tt.minReqs {
				t.Errorf("%d requests, want at least %d", n, tt.minReqs)
			}
		})
	}
}

func TestFindLine(t *testing.T) {
	// A metrics page far past what Get keeps, the line near its end.
	page := strings.Repeat("# filler metric line that pads the page out\n", 4000) + "leader_election_master_status{name=\"x\"} 0\nzz 1\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(page))
	}))
	defer srv.Close()
	for _, tt := range []struct {
		name, path, prefix, want string
		found, fails             bool
	}{
		{"a line past 64 KiB", "/metrics", `leader_election_master_status{name="x"}`, `leader_election_master_status{name="x"} 0`, true, false},
		{"no such line", "/metrics", "absent", "", false, false},
		{"not 200", "/missing", "zz", "", false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			line, found, err := FindLine(t.Context(), srv.URL+tt.path, nil, tt.prefix)
			if (err != nil) != tt.fails || found != tt.found || line != tt.want {
				t.Errorf("FindLine = %q, %v, %v", line, found, err)
			}
		})
	}
}
