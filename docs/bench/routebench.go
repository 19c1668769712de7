// routebench: core NATS through a cluster, written on the official nats.go client so that
// jetlog and nats-server are driven by the same load generator. The publisher (or requester)
// connects to one server and the subscriber (or responder) to another, so every message
// crosses a route. Run by docs/bench/cluster.sh.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

func main() {
	pubURL := flag.String("pub", nats.DefaultURL, "server the publisher connects to")
	subURL := flag.String("sub", nats.DefaultURL, "server the subscriber connects to")
	mode := flag.String("mode", "route", "route|queue|reqrep")
	subsURLs := flag.String("subs", "", "queue mode: servers the queue group's members connect to, comma separated")
	n := flag.Int("n", 1000000, "messages (requests with reqrep)")
	size := flag.Int("size", 128, "payload bytes")
	flag.Parse()

	payload := make([]byte, *size)
	pub, err := nats.Connect(*pubURL, nats.Timeout(5*time.Second))
	must(err)
	defer pub.Close()
	sub, err := nats.Connect(*subURL, nats.Timeout(5*time.Second))
	must(err)
	defer sub.Close()

	switch *mode {
	case "route":
		var got int64
		done := make(chan struct{})
		s, err := sub.Subscribe("bench.route", func(m *nats.Msg) {
			if atomic.AddInt64(&got, 1) == int64(*n) {
				close(done)
			}
		})
		must(err)
		// No client-side limit: nats.go would otherwise drop messages past 64k pending, and a
		// faster server would be measured as a lossy one.
		must(s.SetPendingLimits(-1, -1))
		must(sub.Flush())
		waitForInterest(pub, sub, "bench.route.ready")
		recv, el := publishAndWait(pub, "bench.route", payload, *n, &got, done)
		fmt.Printf("route n=%d size=%d recv=%d elapsed=%.3fs rate=%.0f msgs/s\n", *n, *size, recv, el.Seconds(), float64(recv)/el.Seconds())
	case "queue":
		// One member of the group "workers" on each server of -subs; the publisher on -pub.
		var got int64
		done := make(chan struct{})
		var members []*nats.Conn
		for _, url := range strings.Split(*subsURLs, ",") {
			nc, err := nats.Connect(url, nats.Timeout(5*time.Second))
			must(err)
			defer nc.Close()
			s, err := nc.QueueSubscribe("bench.queue", "workers", func(m *nats.Msg) {
				if atomic.AddInt64(&got, 1) == int64(*n) {
					close(done)
				}
			})
			must(err)
			must(s.SetPendingLimits(-1, -1))
			must(nc.Flush())
			members = append(members, nc)
		}
		for _, member := range members {
			waitForInterest(pub, member, "bench.queue.ready")
		}
		recv, el := publishAndWait(pub, "bench.queue", payload, *n, &got, done)
		fmt.Printf("queue n=%d size=%d recv=%d members=%d elapsed=%.3fs rate=%.0f msgs/s\n", *n, *size, recv, len(members), el.Seconds(), float64(recv)/el.Seconds())
	case "reqrep":
		_, err = sub.Subscribe("bench.svc", func(m *nats.Msg) { m.Respond(payload) })
		must(err)
		must(sub.Flush())
		waitForInterest(pub, sub, "bench.svc.ready")
		start := time.Now()
		for i := 0; i < *n; i++ {
			_, err := pub.Request("bench.svc", payload, 5*time.Second)
			must(err)
		}
		el := time.Since(start)
		fmt.Printf("reqrep n=%d size=%d elapsed=%.3fs rate=%.0f msgs/s latency=%.1fus\n", *n, *size, el.Seconds(), float64(*n)/el.Seconds(), float64(el.Microseconds())/float64(*n))
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", *mode)
		os.Exit(2)
	}
}

// publishAndWait publishes n messages and waits (at most a minute) until the subscribers have
// counted them all; it returns how many arrived and the time from the first publish.
func publishAndWait(pub *nats.Conn, subject string, payload []byte, n int, got *int64, done chan struct{}) (int64, time.Duration) {
	start := time.Now()
	for i := 0; i < n; i++ {
		must(pub.Publish(subject, payload))
	}
	must(pub.Flush())
	select {
	case <-done:
	case <-time.After(60 * time.Second):
	}
	return atomic.LoadInt64(got), time.Since(start)
}

// waitForInterest returns once the publisher's server knows the subscriber's interest: a probe
// subscribed after the benchmark's subscription answers, and routes carry interest in order.
func waitForInterest(pub, sub *nats.Conn, subject string) {
	probe, err := sub.Subscribe(subject, func(m *nats.Msg) { m.Respond(nil) })
	must(err)
	must(sub.Flush())
	defer probe.Unsubscribe()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := pub.Request(subject, nil, 200*time.Millisecond); err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Fprintln(os.Stderr, "interest never reached the publisher's server")
	os.Exit(1)
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
