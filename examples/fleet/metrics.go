package main

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/unimail/unimail/fleet"
)

// collector exports a Fleet's counters for Prometheus: this process's
// Stats, and the accounts as the database has them.
type collector struct {
	f                                    *fleet.Fleet
	accounts, stopped, failing           *prometheus.Desc
	runs, fetched, bytes, errors, fenced *prometheus.Desc
	running, lag, maxLag                 *prometheus.Desc
}

func newCollector(f *fleet.Fleet) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("unimail_fleet_"+name, help, labels, nil)
	}
	return &collector{
		f:        f,
		accounts: d("accounts", "Registered accounts."),
		stopped:  d("accounts_stopped", "Accounts stopped by an error that retrying cannot cure."),
		failing:  d("accounts_failing", "Accounts whose last run failed."),
		runs:     d("runs_total", "Account runs that ended in this process."),
		fetched:  d("messages_total", "Messages delivered to handlers and recorded by this process."),
		bytes:    d("bytes_total", "Octets delivered by this process."),
		errors:   d("errors_total", "Failed runs in this process, by error kind.", "kind"),
		fenced:   d("fenced_total", "Runs that found their account taken over by another worker."),
		running:  d("running", "Accounts being worked by this process now."),
		lag:      d("lag_seconds", "How late the last run started after it was due."),
		maxLag:   d("lag_max_seconds", "The most a run started late since the process started."),
	}
}

// Describe sends the descriptions of the metrics.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.accounts, c.stopped, c.failing, c.runs, c.fetched, c.bytes, c.errors, c.fenced, c.running, c.lag, c.maxLag} {
		ch <- d
	}
}

// Collect reads the counters at scrape time.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.f.Stats()
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	counter(c.runs, float64(st.Runs))
	counter(c.fetched, float64(st.Fetched))
	counter(c.bytes, float64(st.Bytes))
	counter(c.fenced, float64(st.Fenced))
	for kind, n := range st.Errors {
		counter(c.errors, float64(n), kind)
	}
	gauge(c.running, float64(st.Running))
	gauge(c.lag, st.Lag.Seconds())
	gauge(c.maxLag, st.MaxLag.Seconds())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	as, err := c.f.Accounts(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.accounts, err)
		return
	}
	stopped, failing := 0, 0
	for _, a := range as {
		if a.Stopped {
			stopped++
		}
		if a.LastError.After(a.LastSuccess) {
			failing++
		}
	}
	gauge(c.accounts, float64(len(as)))
	gauge(c.stopped, float64(stopped))
	gauge(c.failing, float64(failing))
}

// metricsHandler serves the fleet's metrics, and Go's, at /metrics.
func metricsHandler(f *fleet.Fleet) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newCollector(f), collectors.NewGoCollector())
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}
