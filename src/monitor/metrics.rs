//! `/metrics`: the `/varz` counters and per-stream, per-consumer and per-Raft-group gauges in Prometheus'
//! text exposition format (version 0.0.4). Names carry the `jetlog_` prefix and units
//! (`_bytes`, `_total` for counters), as Prometheus' naming rules ask.

use std::fmt::Write;

use super::jsz::storage_totals;
use super::MonitorState;
use crate::server::cluster_js::raft_report::RaftGroupReport;

/// The content type Prometheus expects for the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Writes one metric family with its samples; `labels` pairs name with value.
fn family(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: &[(Vec<(&str, &str)>, f64)],
) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        out.push_str(name);
        if !labels.is_empty() {
            out.push('{');
            for (i, (label, text)) in labels.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{label}=\"{}\"", escape(text));
            }
            out.push('}');
        }
        let _ = writeln!(out, " {value}");
    }
}

/// One route series: its name, help, and how it reads a route.
type RouteSeries = (
    &'static str,
    &'static str,
    fn(&crate::server::RouteReport) -> f64,
);

/// The route series: how many routes, and each one's traffic, labelled with the remote
/// server's name and id.
fn route_metrics(out: &mut String, cluster: &crate::server::ClusterReport) {
    single(
        out,
        "jetlog_routes",
        "gauge",
        "Routes to other servers of the cluster.",
        cluster.routes.len() as f64,
    );
    let series: [RouteSeries; 5] = [
        (
            "jetlog_route_in_msgs_total",
            "Messages received from the route.",
            |r| r.in_msgs as f64,
        ),
        (
            "jetlog_route_out_msgs_total",
            "Messages sent on the route.",
            |r| r.out_msgs as f64,
        ),
        (
            "jetlog_route_in_bytes_total",
            "Message bytes received from the route.",
            |r| r.in_bytes as f64,
        ),
        (
            "jetlog_route_out_bytes_total",
            "Message bytes sent on the route.",
            |r| r.out_bytes as f64,
        ),
        (
            "jetlog_route_subscriptions",
            "The remote server's interest lines held here.",
            |r| r.subscriptions as f64,
        ),
    ];
    for (name, help, value) in series {
        let kind = if name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        let samples: Vec<(Vec<(&str, &str)>, f64)> = cluster
            .routes
            .iter()
            .map(|r| {
                (
                    vec![
                        ("remote_name", r.remote_name.as_str()),
                        ("remote_id", r.remote_id.as_str()),
                    ],
                    value(r),
                )
            })
            .collect();
        family(out, name, kind, help, &samples);
    }
}

/// Label values escape backslash, double quote and newline.
fn escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn single(out: &mut String, name: &str, kind: &str, help: &str, value: f64) {
    family(out, name, kind, help, &[(Vec::new(), value)]);
}

pub fn metrics(monitor: &MonitorState) -> String {
    let server = monitor.view.server();
    let js = monitor.view.jetstream(true).unwrap_or_default();
    let mut out = String::new();
    let t = server.traffic;
    let uptime = super::clock::since(server.started, std::time::SystemTime::now());
    single(
        &mut out,
        "jetlog_uptime_seconds",
        "gauge",
        "Seconds since the server started.",
        uptime.as_secs_f64(),
    );
    single(
        &mut out,
        "jetlog_connections",
        "gauge",
        "Open client connections.",
        server.connections as f64,
    );
    single(
        &mut out,
        "jetlog_connections_total",
        "counter",
        "Client connections accepted since start.",
        server.total_connections as f64,
    );
    single(
        &mut out,
        "jetlog_subscriptions",
        "gauge",
        "Subscriptions in the index, the server's own included.",
        server.subscriptions as f64,
    );
    single(
        &mut out,
        "jetlog_in_msgs_total",
        "counter",
        "Messages published by clients.",
        t.in_msgs as f64,
    );
    single(
        &mut out,
        "jetlog_out_msgs_total",
        "counter",
        "Messages queued for delivery to clients.",
        t.out_msgs as f64,
    );
    single(
        &mut out,
        "jetlog_in_bytes_total",
        "counter",
        "Header and payload bytes published by clients.",
        t.in_bytes as f64,
    );
    single(
        &mut out,
        "jetlog_out_bytes_total",
        "counter",
        "Header and payload bytes queued for clients.",
        t.out_bytes as f64,
    );
    single(
        &mut out,
        "jetlog_slow_consumers_total",
        "counter",
        "Connections closed as slow consumers.",
        server.slow_consumers as f64,
    );
    if let Some(mem) = super::process::resident_bytes() {
        single(
            &mut out,
            "jetlog_resident_memory_bytes",
            "gauge",
            "Resident set size of the process.",
            mem as f64,
        );
    }
    if let Some(cpu) = monitor.cpu.percent() {
        single(
            &mut out,
            "jetlog_cpu_percent",
            "gauge",
            "CPU use in percent of one core.",
            cpu,
        );
    }
    if let Some(cluster) = monitor.view.cluster(false) {
        route_metrics(&mut out, &cluster);
    }
    let (memory, storage) = storage_totals(&js);
    single(
        &mut out,
        "jetlog_jetstream_memory_bytes",
        "gauge",
        "Bytes held by memory streams.",
        memory as f64,
    );
    single(
        &mut out,
        "jetlog_jetstream_storage_bytes",
        "gauge",
        "Bytes held by file streams.",
        storage as f64,
    );
    single(
        &mut out,
        "jetlog_jetstream_api_requests_total",
        "counter",
        "JetStream API requests answered.",
        js.api_total as f64,
    );
    single(
        &mut out,
        "jetlog_jetstream_api_errors_total",
        "counter",
        "JetStream API requests answered with an error.",
        js.api_errors as f64,
    );
    let stream_gauge =
        |out: &mut String,
         name: &str,
         help: &str,
         value: fn(&crate::jetstream::api_types::StreamState) -> u64| {
            let samples: Vec<_> = js
                .streams
                .iter()
                .map(|s| {
                    (
                        vec![
                            ("account", s.account.as_str()),
                            ("stream", s.info.config.name.as_str()),
                        ],
                        value(&s.info.state) as f64,
                    )
                })
                .collect();
            family(out, name, "gauge", help, &samples);
        };
    stream_gauge(
        &mut out,
        "jetlog_stream_messages",
        "Messages held by the stream.",
        |s| s.messages,
    );
    stream_gauge(
        &mut out,
        "jetlog_stream_bytes",
        "Bytes held by the stream.",
        |s| s.bytes,
    );
    stream_gauge(
        &mut out,
        "jetlog_stream_consumers",
        "Consumers of the stream.",
        |s| s.consumer_count,
    );
    stream_gauge(
        &mut out,
        "jetlog_stream_last_seq",
        "The stream's last sequence.",
        |s| s.last_seq,
    );
    let consumer_gauge =
        |out: &mut String,
         name: &str,
         help: &str,
         value: fn(&crate::jetstream::consumer_config::ConsumerInfo) -> u64| {
            let samples: Vec<_> = js
                .streams
                .iter()
                .flat_map(|s| s.consumers.iter().map(move |c| (s.account.as_str(), c)))
                .map(|(account, c)| {
                    (
                        vec![
                            ("account", account),
                            ("stream", c.stream_name.as_str()),
                            ("consumer", c.name.as_str()),
                        ],
                        value(c) as f64,
                    )
                })
                .collect();
            family(out, name, "gauge", help, &samples);
        };
    consumer_gauge(
        &mut out,
        "jetlog_consumer_num_pending",
        "Messages matching the consumer not yet delivered.",
        |c| c.num_pending,
    );
    consumer_gauge(
        &mut out,
        "jetlog_consumer_num_ack_pending",
        "Messages delivered and not yet acknowledged.",
        |c| c.num_ack_pending,
    );
    consumer_gauge(
        &mut out,
        "jetlog_consumer_num_redelivered",
        "Unacknowledged messages delivered more than once.",
        |c| c.num_redelivered,
    );
    consumer_gauge(
        &mut out,
        "jetlog_consumer_num_waiting",
        "Pull requests waiting.",
        |c| c.num_waiting,
    );
    raft_families(&mut out, &monitor.view.raft_groups());
    out
}

/// The Raft groups this server is a member of (in a cluster): term, log and applied index,
/// leadership, and on a leader each other member's lag.
fn raft_families(out: &mut String, groups: &[RaftGroupReport]) {
    let labels = |g: &RaftGroupReport| {
        let mut labels = vec![("group", g.group.clone())];
        if let (Some(account), Some(stream)) = (&g.account, &g.stream) {
            labels.push(("account", account.clone()));
            labels.push(("stream", stream.clone()));
        }
        labels
    };
    let gauge = |out: &mut String, name: &str, help: &str, value: fn(&RaftGroupReport) -> f64| {
        let owned: Vec<(Vec<(&str, String)>, f64)> =
            groups.iter().map(|g| (labels(g), value(g))).collect();
        let samples: Vec<(Vec<(&str, &str)>, f64)> = owned
            .iter()
            .map(|(l, v)| (l.iter().map(|(k, v)| (*k, v.as_str())).collect(), *v))
            .collect();
        family(out, name, "gauge", help, &samples);
    };
    gauge(out, "jetlog_raft_term", "The group's current term.", |g| {
        g.term as f64
    });
    gauge(
        out,
        "jetlog_raft_last_log_index",
        "The last entry in this member's log.",
        |g| g.last_index as f64,
    );
    gauge(
        out,
        "jetlog_raft_applied_index",
        "The last entry this member's machine applied.",
        |g| g.applied as f64,
    );
    gauge(
        out,
        "jetlog_raft_leader",
        "1 where this member leads the group.",
        |g| f64::from(u8::from(g.state == "leader")),
    );
    let owned: Vec<(Vec<(&str, &str)>, f64)> = groups
        .iter()
        .flat_map(|g| {
            g.peers.iter().map(move |p| {
                (
                    vec![("group", g.group.as_str()), ("peer", p.name.as_str())],
                    p.lag as f64,
                )
            })
        })
        .collect();
    family(
        out,
        "jetlog_raft_peer_lag",
        "gauge",
        "On a group's leader: the entries another member lacks.",
        &owned,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        family(
            &mut out,
            "m",
            "gauge",
            "h",
            &[(vec![("l", "a\"b\\c\nd")], 1.0)],
        );
        assert!(out.ends_with("m{l=\"a\\\"b\\\\c\\nd\"} 1\n"), "{out}");
    }
}
