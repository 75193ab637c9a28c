package main

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// row is one line of docs/benchmarks.md: what was measured, the median,
// the 1-minute load average just before the measurement began, and notes.
type row struct{ name, value, load, note string }

// withLoad gives measured rows the load average their measurement began at.
func withLoad(load float64, rows [][3]string) []row {
	out := make([]row, len(rows))
	for i, r := range rows {
		out[i] = row{name: r[0], value: r[1], load: fmt.Sprintf("%.2f", load), note: r[2]}
	}
	return out
}

func (r row) String() string {
	return fmt.Sprintf("| %s | %s | %s | %s |", r.name, r.value, r.load, r.note)
}

const tableHead = "| Measurement | Median | Load before | Notes |\n|---|---|---|---|\n"

// quietness holds measurements back while the machine is busy: figures
// taken beside another job (a run once recorded a load average of 18.9)
// say nothing about kubeseed.
type quietness struct {
	maxLoad float64       // the 1-minute load average a measurement may begin at
	wait    time.Duration // how long to wait for it before giving up
}

// settle waits until the 1-minute load average is at most q.maxLoad and
// returns it; after q.wait it refuses, so no figures are written.
func (q quietness) settle(what string) (float64, error) {
	deadline := time.Now().Add(q.wait)
	for said := false; ; said = true {
		load, err := loadAvg1()
		if err != nil {
			return 0, err
		}
		if load <= q.maxLoad {
			return load, nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%s: the 1-minute load average is still %.2f, above %.2f, after %s; is another job running? No figures were written (-max-load changes the limit)", what, load, q.maxLoad, q.wait)
		}
		if !said {
			fmt.Fprintf(os.Stderr, "%s: waiting for the load average (%.2f) to fall to %.2f ...\n", what, load, q.maxLoad)
		}
		time.Sleep(5 * time.Second)
	}
}

// loadAvg1 is the 1-minute load average.
func loadAvg1() (float64, error) {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0, err
	}
	return parseLoadAvg(string(data))
}

func parseLoadAvg(s string) (float64, error) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return 0, fmt.Errorf("/proc/loadavg is empty")
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return 0, fmt.Errorf("/proc/loadavg: %w", err)
	}
	return v, nil
}

// writeTable writes the whole benchmarks file.
func writeTable(path string, runs int, rows []row) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Benchmarks\n\nWritten by `make bench` (`bench/main.go`) on %s: %d CPUs, Go %s, median of %d runs unless a row says otherwise. "+
		"Each measurement waits until the 1-minute load average is low and records it (\"Load before\"); the harness refuses to write figures when it stays high.\n\n",
		time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), runtime.Version(), runs)
	b.WriteString(tableHead)
	for _, r := range rows {
		b.WriteString(r.String() + "\n")
	}
	b.WriteString("\nFor reference (shared/notes/platform.md, same machine type): upstream v1.37.2 as 4 separate\n" +
		"processes reached `/readyz` in 3.65 s and idled at 515 MiB RSS in total.\n")
	fmt.Print(b.String())
	// Sections other modes write (-trace-pods) stay.
	if old, err := os.ReadFile(path); err == nil {
		if i := strings.Index(string(old), "\n## "); i >= 0 {
			b.WriteString(string(old[i:]))
		}
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// oldHead is the table's layout before loads were recorded.
const oldHead = "| Measurement | Median | Notes |\n|---|---|---|\n"

// updateRows replaces the rows of path's table that measure what rows
// measure and appends the others after its last row, and prints them. Rows
// of the older three-column layout get an empty load.
func updateRows(path string, rows []row) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	text := strings.Replace(string(data), oldHead, tableHead, 1)
	if !strings.Contains(text, tableHead) {
		return fmt.Errorf("%s has no benchmark table; run the whole benchmark (make bench) to write it", path)
	}
	lines := strings.Split(text, "\n")
	// The benchmark table runs from its head to the first line that is not
	// a row; later sections have tables of their own.
	head := slices.Index(lines, strings.SplitN(tableHead, "\n", 2)[0])
	last := head + 1
	for i := head + 2; i < len(lines) && strings.HasPrefix(lines[i], "| "); i++ {
		last = i
		if cells := strings.Split(lines[i], " | "); len(cells) == 3 {
			lines[i] = strings.Join([]string{cells[0], cells[1], "—", cells[2]}, " | ")
		}
	}
	for _, r := range rows {
		fmt.Println(r)
		i := slices.IndexFunc(lines[:last+1], func(l string) bool { return strings.HasPrefix(l, "| "+r.name+" |") })
		if i >= 0 {
			lines[i] = r.String()
			continue
		}
		last++
		lines = slices.Insert(lines, last, r.String())
	}
	return os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644)
}
