package cluster

import (
	"strings"
	"testing"

	"github.com/kubeseed/kubeseed/internal/datadir"
)

func TestParse(t *testing.T) {
	cases := []struct {
		name, data, wantErr string
	}{
		{"worker", `{"role":"worker","apiServers":["10.0.0.1:16443"],"agents":["10.0.0.1:25000"],"tokenID":"abc123","attempt":"x"}`, ""},
		{"completed", `{"role":"worker","apiServers":["[fd00::1]:16443"]}`, ""},
		{"not JSON", `role: worker`, "cluster.json"},
		{"joined control plane", `{"role":"control-plane","apiServers":["10.0.0.1:16443"],"agents":["10.0.0.1:25000"]}`, ""},
		{"unknown role", `{"role":"etcd","apiServers":["10.0.0.1:16443"]}`, "field role"},
		{"no apiservers", `{"role":"worker"}`, "field apiServers"},
		{"bad address", `{"role":"worker","apiServers":["10.0.0.1"]}`, `address "10.0.0.1"`},
		{"half a join", `{"role":"worker","apiServers":["10.0.0.1:16443"],"tokenID":"abc123"}`, "go together"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("/d/var/cluster.json", []byte(c.data))
			if c.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("error %v, want one with %q", err, c.wantErr)
			}
		})
	}
}

func TestLoadSave(t *testing.T) {
	l := datadir.Layout{Root: t.TempDir()}
	s, err := Load(l)
	if err != nil || s.Role != ControlPlane {
		t.Fatalf("a data dir without a record: %+v %v", s, err)
	}
	want := State{Role: Worker, APIServers: []string{"10.0.0.1:16443"}, Agents: []string{"10.0.0.1:25000"}, CAHash: "ab", TokenID: "t", Attempt: "a"}
	if err := Save(l, want); err != nil {
		t.Fatal(err)
	}
	got, err := Load(l)
	if err != nil || got.Role != Worker || got.TokenID != "t" || got.APIServers[0] != want.APIServers[0] {
		t.Fatalf("round trip: %+v %v", got, err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"role":"worker","apiServers":["10.0.0.1:16443"]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse("cluster.json", data)
		if err == nil && (s.Role != Worker || len(s.APIServers) == 0) {
			t.Fatalf("accepted %+v", s)
		}
	})
}
