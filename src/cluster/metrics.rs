//! The cluster's lines of `/metrics` (Prometheus text): remote queue depth, jobs in flight,
//! what became of them, and per-worker throughput.

use super::ClusterLink;
use std::fmt::Write;
use std::sync::atomic::Ordering;

pub fn render_metrics(out: &mut String, link: &ClusterLink) {
    let stats = &link.stats;
    let gauges = [
        (
            "aiocr_nats_connected",
            "1 while NATS is reachable and remote jobs may be published.",
            u64::from(stats.is_connected()),
        ),
        (
            "aiocr_remote_queue_depth",
            "Jobs waiting in the JetStream work queue (every node's), as of the last heartbeat.",
            stats.stream_depth.load(Ordering::Relaxed),
        ),
        (
            "aiocr_remote_in_flight",
            "Jobs this node published that have no result applied yet.",
            stats.in_flight.load(Ordering::SeqCst) as u64,
        ),
        (
            "aiocr_forward_unacknowledged_pending",
            "Requests other nodes forwarded here that charged points, awaiting the acknowledgement of their answer.",
            link.unconfirmed.awaiting() as u64,
        ),
        (
            "aiocr_username_conflicts",
            "Usernames of this node's users the registry gives to another node (found when the names were claimed again after NATS lost them; listed in the log and in <data_dir>/username-conflicts).",
            stats.username_conflicts.load(Ordering::Relaxed),
        ),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    }
    let counters = [
        (
            "aiocr_remote_published_total",
            "Jobs published to the work queue.",
            &stats.published,
        ),
        (
            "aiocr_remote_fallbacks_total",
            "Jobs that could not be published and ran locally.",
            &stats.fallbacks,
        ),
        (
            "aiocr_remote_timeouts_total",
            "Remote jobs failed and refunded for want of a result in time.",
            &stats.timeouts,
        ),
        (
            "aiocr_remote_redelivered_total",
            "Results of jobs JetStream delivered more than once.",
            &stats.redelivered,
        ),
        (
            "aiocr_remote_stale_results_total",
            "Results for jobs no longer in flight (applied once already, or voided): ignored.",
            &stats.stale_results,
        ),
        (
            "aiocr_nats_disconnects_total",
            "Times the connection to NATS was lost.",
            &stats.disconnects,
        ),
        (
            "aiocr_node_forwarded_out_total",
            "Requests forwarded to the node owning their user.",
            &stats.forwarded_out,
        ),
        (
            "aiocr_node_forwarded_in_total",
            "Requests other nodes forwarded here.",
            &stats.forwarded_in,
        ),
        (
            "aiocr_forward_unacknowledged_total",
            "Answers to forwarded requests that charged points and were not acknowledged in time: their charges given back.",
            &stats.forward_unacknowledged,
        ),
        (
            "aiocr_forward_withdrawn_total",
            "Uploads given back because the answer to their forwarded request was not acknowledged (pending voided, done refunded).",
            &stats.forward_withdrawn,
        ),
        (
            "aiocr_forward_untracked_total",
            "Charges of forwarded requests not tracked for acknowledgement (the table was full): kept.",
            &stats.forward_untracked,
        ),
        (
            "aiocr_usernames_reclaimed_total",
            "Usernames of this node claimed again after the registry was found without this node's claims.",
            &stats.names_reclaimed,
        ),
    ];
    for (name, help, counter) in counters {
        let value = counter.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    }
    let workers = stats
        .workers
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone();
    let _ = writeln!(
        out,
        "# HELP aiocr_worker_results_total Results each remote worker returned to this node.\n\
         # TYPE aiocr_worker_results_total counter"
    );
    for (worker, count) in &workers {
        let _ = writeln!(
            out,
            "aiocr_worker_results_total{{worker=\"{}\"}} {}",
            label(worker),
            count.results
        );
    }
    let _ = writeln!(
        out,
        "# HELP aiocr_worker_recognize_us_total Time each remote worker spent on this node's jobs.\n\
         # TYPE aiocr_worker_recognize_us_total counter"
    );
    for (worker, count) in &workers {
        let _ = writeln!(
            out,
            "aiocr_worker_recognize_us_total{{worker=\"{}\"}} {}",
            label(worker),
            count.recognize_us
        );
    }
}

/// A worker name as a label value: quotes, backslashes and line breaks escaped.
fn label(name: &str) -> String {
    name.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
