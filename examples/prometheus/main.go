// Command prometheus shows a service exposing its log's metrics: it appends
// a record every -every and serves /metrics on a loopback address.
//
//	go run . -dir /tmp/wal -addr 127.0.0.1:9464 &
//	curl -s 127.0.0.1:9464/metrics | grep ^mmapwal_
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"time"

	walprom "github.com/mmapwal/wal/contrib/prometheus"
	"github.com/mmapwal/wal/mmapwal"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func main() {
	dir := flag.String("dir", "wal-data", "log directory")
	addr := flag.String("addr", "127.0.0.1:9464", "listen address for /metrics (loopback)")
	every := flag.Duration("every", 10*time.Millisecond, "append a record this often")
	flag.Parse()
	if err := run(*dir, *addr, *every); err != nil {
		fmt.Fprintln(os.Stderr, "prometheus example:", err)
		os.Exit(1)
	}
}

func run(dir, addr string, every time.Duration) error {
	w, err := mmapwal.Open(dir, nil)
	if err != nil {
		return err
	}
	defer w.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		walprom.NewCollector(w, &walprom.Options{ConstLabels: prometheus.Labels{"wal": "events"}}),
		collectors.NewGoCollector(),
	)
	srv := &http.Server{Addr: addr, Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for n := 0; ; n++ {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if _, err := w.Append(fmt.Appendf(nil, "event %d", n)); err != nil {
					slog.Error("append", "err", err)
					stop()
					return
				}
			}
		}
	}()
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	slog.Info("serving metrics", "url", "http://"+addr+"/metrics")
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
