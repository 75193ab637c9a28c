package main

import (
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
)

func TestParseLoadAvg(t *testing.T) {
	tests := []struct {
		in   string
		want float64
		ok   bool
	}{
		{"0.52 0.58 0.59 1/389 12345\n", 0.52, true},
		{"18.90 6.00 2.00 3/400 1", 18.9, true},
		{"", 0, false},
		{"x 1 2", 0, false},
	}
	for _, tt := range tests {
		got, err := parseLoadAvg(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseLoadAvg(%q) = %v, %v; want %v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestUpdateRows(t *testing.T) {
	tests := []struct {
		name, before string
		rows         []row
		want         string
		wantErr      bool
	}{
		{
			name:   "old layout gains the load column, a row is replaced and one appended",
			before: "# B\n\n| Measurement | Median | Notes |\n|---|---|---|\n| a | 1 s | note a |\n| b | 2 s |  |\n\ntail\n",
			rows:   []row{{"b", "3 s", "0.40", "new"}, {"c", "4 /s", "0.50", ""}},
			want:   "# B\n\n| Measurement | Median | Load before | Notes |\n|---|---|---|---|\n| a | 1 s | — | note a |\n| b | 3 s | 0.40 | new |\n| c | 4 /s | 0.50 |  |\n\ntail\n",
		},
		{
			name:   "new layout is kept",
			before: "| Measurement | Median | Load before | Notes |\n|---|---|---|---|\n| a | 1 s | 0.10 | x |\n",
			rows:   []row{{"a", "2 s", "0.20", "y"}},
			want:   "| Measurement | Median | Load before | Notes |\n|---|---|---|---|\n| a | 2 s | 0.20 | y |\n",
		},
		{
			name:   "rows go into the benchmark table, not a later section's",
			before: "| Measurement | Median | Load before | Notes |\n|---|---|---|---|\n| a | 1 s | 0.10 | x |\n\n## S\n\n| Milestone | p50 |\n|---|---|\n| a | 9 s |\n",
			rows:   []row{{"b", "2 s", "0.20", ""}, {"a", "3 s", "0.30", "z"}},
			want:   "| Measurement | Median | Load before | Notes |\n|---|---|---|---|\n| a | 3 s | 0.30 | z |\n| b | 2 s | 0.20 |  |\n\n## S\n\n| Milestone | p50 |\n|---|---|\n| a | 9 s |\n",
		},
		{name: "no table", before: "# nothing\n", rows: []row{{"a", "1", "0", ""}}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "b.md")
			if err := os.WriteFile(path, []byte(tt.before), 0o644); err != nil {
				t.Fatal(err)
			}
			err := updateRows(path, tt.rows)
			if (err != nil) != tt.wantErr {
				t.Fatalf("updateRows: %v, want error %v", err, tt.wantErr)
			}
			got, _ := os.ReadFile(path)
			if tt.wantErr {
				if string(got) != tt.before {
					t.Errorf("a refused update changed the file:\n%s", got)
				}
				return
			}
			if string(got) != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestRunParallel(t *testing.T) {
	var done atomic.Int64
	rate, err := runParallel(100, 8, func(int) error { done.Add(1); return nil })
	if err != nil || rate <= 0 || done.Load() != 100 {
		t.Fatalf("runParallel = %v, %v after %d ops; want a rate after 100", rate, err, done.Load())
	}
	boom := errors.New("boom")
	done.Store(0)
	_, err = runParallel(10000, 4, func(i int) error {
		done.Add(1)
		if i == 5 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("runParallel error = %v, want boom", err)
	}
	if n := done.Load(); n >= 10000 {
		t.Errorf("the first error did not stop the rest: %d ops ran", n)
	}
}
