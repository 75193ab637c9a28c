package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// The API load generator: the same figures for one node, a 3-member
// cluster and the hardened profile, so regressions show.
const (
	crudObjects     = 2000
	crudConcurrency = 8
	crudNamespace   = "bench-crud"
)

// crudRate is one round's throughput of each verb, in operations a second.
type crudRate struct{ create, get, update, delete float64 }

// measureCRUD runs `rounds` rounds of the load against the apiserver n
// serves.
func measureCRUD(n *benchNode, rounds int) ([]crudRate, error) {
	cs, err := loadClient(n)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: crudNamespace}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("create namespace %s: %w", crudNamespace, err)
	}
	var out []crudRate
	for r := range rounds {
		rate, err := crudRound(ctx, cs, r)
		if err != nil {
			return nil, fmt.Errorf("CRUD round %d: %w", r+1, err)
		}
		fmt.Fprintf(os.Stderr, "CRUD round %d/%d: create %.0f/s get %.0f/s update %.0f/s delete %.0f/s\n",
			r+1, rounds, rate.create, rate.get, rate.update, rate.delete)
		out = append(out, rate)
	}
	return out, nil
}

// loadClient is an admin client without client-side rate limiting: the
// generator must not be the bottleneck.
func loadClient(n *benchNode) (kubernetes.Interface, error) {
	cfg, err := adminConfig(n)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = -1, 0 // a negative QPS turns the limiter off
	return kubernetes.NewForConfig(cfg)
}

// crudRound creates crudObjects ConfigMaps of 1 KiB with crudConcurrency
// workers, then gets, updates and deletes each, timing every verb's phase.
func crudRound(ctx context.Context, cs kubernetes.Interface, round int) (crudRate, error) {
	api := cs.CoreV1().ConfigMaps(crudNamespace)
	payload := strings.Repeat("k", 1024)
	objs := make([]*corev1.ConfigMap, crudObjects)
	name := func(i int) string { return fmt.Sprintf("crud-%d-%d", round, i) }
	phase := func(verb string, op func(i int) error) (float64, error) {
		rate, err := runParallel(crudObjects, crudConcurrency, op)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", verb, err)
		}
		return rate, nil
	}
	var r crudRate
	var err error
	if r.create, err = phase("create", func(i int) error {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name(i)}, Data: map[string]string{"v": payload}}
		created, err := api.Create(ctx, cm, metav1.CreateOptions{})
		objs[i] = created
		return err
	}); err != nil {
		return r, err
	}
	if r.get, err = phase("get", func(i int) error {
		_, err := api.Get(ctx, name(i), metav1.GetOptions{})
		return err
	}); err != nil {
		return r, err
	}
	if r.update, err = phase("update", func(i int) error {
		cm := objs[i].DeepCopy()
		cm.Data["v"] = strings.Repeat("u", 1024)
		_, err := api.Update(ctx, cm, metav1.UpdateOptions{})
		return err
	}); err != nil {
		return r, err
	}
	r.delete, err = phase("delete", func(i int) error {
		return api.Delete(ctx, name(i), metav1.DeleteOptions{})
	})
	return r, err
}

// runParallel runs op for 0..n-1 on `workers` goroutines and returns the
// operations a second; the first error stops the rest.
func runParallel(n, workers int, op func(i int) error) (float64, error) {
	next := make(chan int)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	stop := make(chan struct{})
	begin := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := op(i); err != nil {
					once.Do(func() { first = err; close(stop) })
					return
				}
			}
		}()
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-stop:
			break feed
		}
	}
	close(next)
	wg.Wait()
	if first != nil {
		return 0, first
	}
	return float64(n) / time.Since(begin).Seconds(), nil
}

// crudRows are the load's rows for one target ("one node", "3-member
// cluster", ...).
func crudRows(target, note string, rates []crudRate) [][3]string {
	verb := func(name string, key func(crudRate) float64) [3]string {
		return [3]string{
			fmt.Sprintf("API %s throughput, %s", name, target),
			fmt.Sprintf("%.0f /s", medianOf(rates, key)),
			note,
		}
	}
	rows := [][3]string{
		verb("create", func(r crudRate) float64 { return r.create }),
		verb("get", func(r crudRate) float64 { return r.get }),
		verb("update", func(r crudRate) float64 { return r.update }),
		verb("delete", func(r crudRate) float64 { return r.delete }),
	}
	for i := 1; i < len(rows); i++ {
		rows[i][2] = "same load"
	}
	return rows
}

// crudNote describes the generator for the first row of a target.
func crudNote(where string) string {
	return fmt.Sprintf("client-go, %d ConfigMaps of 1 KiB, %d workers, no client rate limit; create, then get, update and delete each; %s; median of the rounds", crudObjects, crudConcurrency, where)
}
