//! Server metrics in the Prometheus text format. Each shard records into its own
//! `ShardMetrics` (a mutex only that shard takes, except for the moment a scrape reads it),
//! so recording never contends across cores; a scrape merges the shards' HDR histograms.
//!
//! Routes are known by their index in the route table (server/router.rs); the registry is
//! given the table's labels once, at start, and knows nothing else about routing.

use hdrhistogram::Histogram;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};

/// Latencies are recorded in microseconds, 1 µs .. 10 min, 2 significant digits (quantiles
/// within 1 %): about 60 KB per histogram, where 3 digits would take about 500 KB, times one
/// histogram per route and a few more per shard.
fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 2).expect("static bounds are valid")
}

pub struct ShardMetrics {
    pub route_latency_us: Vec<Histogram<u64>>,
    /// Answers by HTTP status class: index 1..=5 for 1xx..5xx.
    pub route_status_classes: Vec<[u64; 6]>,
    pub connections_open: u64,
    pub connections_accepted: u64,
    /// Closed at once because the shard was at its connection limit.
    pub connections_refused: u64,
    /// Closed at once because their address had its share of the shard's connections.
    pub connections_refused_address: u64,
    /// Requests with a body answered before the body was read in full (no route, no valid
    /// credentials, no room in the body budget); the connection then closes.
    pub requests_refused_before_body: u64,
    /// Of those, refused because the shard's body budget was spent (5001).
    pub bodies_refused_busy: u64,
    /// Memory held by the request bodies the shard is receiving now.
    pub body_bytes_in_flight: u64,
    /// Live MCP sessions of the users this shard owns (`mcp_sessions_per_shard`).
    pub mcp_sessions: u64,
    /// TLS handshakes completed, and those that failed or timed out (plain HTTP on the TLS
    /// port, unknown protocol versions, clients that never finish).
    pub tls_handshakes: u64,
    pub tls_handshakes_failed: u64,
    /// Protocol refusals (400/408/413/414/431/501/505) by status.
    pub protocol_errors: Vec<(u16, u64)>,
    pub forwarded_out: u64,
    pub forwarded_in: u64,
    /// Forwards refused (5001) because the owner shard's inbox was full.
    pub forwards_refused: u64,
    pub fsync_us: Histogram<u64>,
    /// Why the shard's storage failed, while it has not recovered (server/storage.rs):
    /// writes are refused (5004) and `/health` answers 503.
    pub storage_failure: Option<String>,
    /// Storage failures (each one until its recovery counts once), recoveries, and probes
    /// of the disk while failed.
    pub storage_failures: u64,
    pub storage_recoveries: u64,
    pub storage_probes: u64,
    /// Durability waiters released per fsync (the group size).
    pub fsync_group_size: Histogram<u64>,
    pub uploads_accepted: u64,
    pub uploads_queue_full: u64,
    /// `wait=1` uploads refused (5001) because the shard's waiter table was full.
    pub uploads_waiters_full: u64,
    pub results_done: u64,
    pub results_failed: u64,
    /// Results answered from the answer cache (uploads and hash lookups; charged).
    pub results_cache_hits: u64,
    /// The part of the answer cache this shard owns, as it counts itself.
    pub cache: CacheCounters,
    /// Lookups this shard sent to the shard owning the image's entry (another shard).
    pub cache_cross_shard_lookups: u64,
    /// How long an upload's cache lookup took, as its shard saw it, by where the entry's
    /// owner was (this shard, or another: the hop) and whether it found an answer; index
    /// `2 * remote + found`.
    pub cache_lookup_us: [Histogram<u64>; 4],
    /// Lookups and fills not sent because the owner's inbox was full (a lookup then counts
    /// as a miss: the upload runs the model; a fill is only lost work).
    pub cache_messages_dropped: u64,
    /// Callbacks (pingback, callbackUrl) answered 2xx, and given up after every attempt.
    pub callbacks_delivered: u64,
    pub callbacks_failed: u64,
    /// Logins and password changes refused for a wrong password or an unknown username.
    pub logins_failed: u64,
    /// Login attempts refused (5002, nothing hashed) while the account's backoff lasts, and
    /// while the client address's does.
    pub login_backoff_account: u64,
    pub login_backoff_address: u64,
    /// Password checks refused (5001) because the password hash queue was full.
    pub password_hash_queue_full: u64,
    /// Tokens refused because their user was removed or their epoch revoked (logout,
    /// password or role change, admin revocation), or the user never existed.
    pub tokens_revoked: u64,
    pub recognize_us: Histogram<u64>,
    pub queued_us: Histogram<u64>,
    pub batch_size: Histogram<u64>,
}

impl ShardMetrics {
    fn new(route_count: usize) -> ShardMetrics {
        ShardMetrics {
            route_latency_us: (0..route_count).map(|_| latency_histogram()).collect(),
            route_status_classes: vec![[0; 6]; route_count],
            connections_open: 0,
            connections_accepted: 0,
            connections_refused: 0,
            connections_refused_address: 0,
            requests_refused_before_body: 0,
            bodies_refused_busy: 0,
            body_bytes_in_flight: 0,
            mcp_sessions: 0,
            tls_handshakes: 0,
            tls_handshakes_failed: 0,
            protocol_errors: Vec::new(),
            forwarded_out: 0,
            forwarded_in: 0,
            forwards_refused: 0,
            fsync_us: latency_histogram(),
            storage_failure: None,
            storage_failures: 0,
            storage_recoveries: 0,
            storage_probes: 0,
            fsync_group_size: Histogram::new_with_bounds(1, 1_000_000, 2).expect("static bounds"),
            uploads_accepted: 0,
            uploads_queue_full: 0,
            uploads_waiters_full: 0,
            results_done: 0,
            results_failed: 0,
            results_cache_hits: 0,
            cache: CacheCounters::default(),
            cache_cross_shard_lookups: 0,
            cache_lookup_us: std::array::from_fn(|_| latency_histogram()),
            cache_messages_dropped: 0,
            callbacks_delivered: 0,
            callbacks_failed: 0,
            logins_failed: 0,
            login_backoff_account: 0,
            login_backoff_address: 0,
            password_hash_queue_full: 0,
            tokens_revoked: 0,
            recognize_us: latency_histogram(),
            queued_us: latency_histogram(),
            batch_size: Histogram::new_with_bounds(1, 4096, 2).expect("static bounds"),
        }
    }

    /// One answer of the route at `route_index` in the route table.
    pub fn record_request(&mut self, route_index: usize, status: u16, latency_us: u64) {
        assert!(
            route_index < self.route_latency_us.len(),
            "route {route_index} is in the table the registry was made with"
        );
        self.route_latency_us[route_index].saturating_record(latency_us.max(1));
        let class = usize::from(status / 100).min(5);
        self.route_status_classes[route_index][class] += 1;
    }

    pub fn record_protocol_error(&mut self, status: u16) {
        match self
            .protocol_errors
            .iter_mut()
            .find(|(code, _)| *code == status)
        {
            Some((_, count)) => *count += 1,
            None => self.protocol_errors.push((status, 1)),
        }
    }
}

/// One shard's part of the answer cache (server/cache/store.rs keeps these and copies them
/// here after each change): counters since start, and the entries and bytes held now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheCounters {
    /// Lookups that found an answer, and that found none (uploads and hash lookups alike).
    pub hits: u64,
    pub misses: u64,
    /// Answers stored.
    pub fills: u64,
    /// Answers not stored: the image was reported (within the TTL), or the entry alone is
    /// larger than `cache_bytes`.
    pub fills_refused: u64,
    /// Entries dropped, by why: the least recently used beyond `cache_entries` or
    /// `cache_bytes`, past `cache_ttl_secs`, reported as wrong.
    pub evicted_capacity: u64,
    pub expired: u64,
    pub evicted_reported: u64,
    /// Held now.
    pub entries: u64,
    pub bytes: u64,
}

/// Reads one per-shard counter (for rendering).
type ReadCounter = fn(&ShardMetrics) -> u64;

/// Every shard's metrics; cloned into each shard.
#[derive(Clone)]
pub struct Registry {
    shards: Arc<Vec<Mutex<ShardMetrics>>>,
    /// The route table's labels, by route index.
    route_labels: &'static [&'static str],
}

impl Registry {
    pub fn new(shard_count: u16, route_labels: &'static [&'static str]) -> Registry {
        let shards = (0..shard_count)
            .map(|_| Mutex::new(ShardMetrics::new(route_labels.len())))
            .collect();
        Registry {
            shards: Arc::new(shards),
            route_labels,
        }
    }

    /// The shard's own metrics, for recording.
    pub fn shard(&self, shard: u16) -> MutexGuard<'_, ShardMetrics> {
        // A poisoned lock only means a panic elsewhere mid-record; the counters are still usable.
        self.shards[usize::from(shard)]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The Prometheus text exposition of all shards; `queues` are the recognition queues'
    /// (kind, depth, capacity).
    pub fn render(&self, queues: &[(&str, usize, usize)]) -> String {
        let mut out = String::with_capacity(16 * 1024);
        self.render_routes(&mut out);
        self.render_shards(&mut out);
        self.render_protocol_errors(&mut out);
        self.render_storage_and_uploads(&mut out);
        render_queues(&mut out, queues);
        out
    }

    fn render_routes(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP aiocr_request_duration_us Request latency per route (HDR histogram)."
        );
        let _ = writeln!(out, "# TYPE aiocr_request_duration_us summary");
        let mut counts_by_class = Vec::new();
        for (route_index, label) in self.route_labels.iter().enumerate() {
            let mut merged = latency_histogram();
            let mut classes = [0u64; 6];
            for shard in self.shards.iter() {
                let shard = shard
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                let _ = merged.add(&shard.route_latency_us[route_index]);
                for (total, count) in classes
                    .iter_mut()
                    .zip(shard.route_status_classes[route_index])
                {
                    *total += count;
                }
            }
            write_summary(
                out,
                "aiocr_request_duration_us",
                &format!("route=\"{label}\""),
                &merged,
            );
            counts_by_class.push((label, classes));
        }
        let _ = writeln!(
            out,
            "# HELP aiocr_requests_total Answers per route and status class."
        );
        let _ = writeln!(out, "# TYPE aiocr_requests_total counter");
        for (label, classes) in counts_by_class {
            for (class, count) in classes.iter().enumerate().filter(|(_, count)| **count > 0) {
                let _ = writeln!(
                    out,
                    "aiocr_requests_total{{route=\"{label}\",status=\"{class}xx\"}} {count}"
                );
            }
        }
    }

    fn render_shards(&self, out: &mut String) {
        let gauges: &[(&str, &str, ReadCounter)] = &[
            ("aiocr_connections_open", "gauge", |m| m.connections_open),
            ("aiocr_connections_accepted_total", "counter", |m| {
                m.connections_accepted
            }),
            ("aiocr_connections_refused_total", "counter", |m| {
                m.connections_refused
            }),
            ("aiocr_connections_refused_address_total", "counter", |m| {
                m.connections_refused_address
            }),
            ("aiocr_requests_refused_before_body_total", "counter", |m| {
                m.requests_refused_before_body
            }),
            ("aiocr_bodies_refused_busy_total", "counter", |m| {
                m.bodies_refused_busy
            }),
            ("aiocr_body_bytes_in_flight", "gauge", |m| {
                m.body_bytes_in_flight
            }),
            ("aiocr_mcp_sessions", "gauge", |m| m.mcp_sessions),
            ("aiocr_tls_handshakes_total", "counter", |m| {
                m.tls_handshakes
            }),
            ("aiocr_tls_handshakes_failed_total", "counter", |m| {
                m.tls_handshakes_failed
            }),
            ("aiocr_forwarded_out_total", "counter", |m| m.forwarded_out),
            ("aiocr_forwarded_in_total", "counter", |m| m.forwarded_in),
            ("aiocr_forwards_refused_total", "counter", |m| {
                m.forwards_refused
            }),
            ("aiocr_uploads_accepted_total", "counter", |m| {
                m.uploads_accepted
            }),
            ("aiocr_storage_failed", "gauge", |m| {
                u64::from(m.storage_failure.is_some())
            }),
            ("aiocr_storage_failures_total", "counter", |m| {
                m.storage_failures
            }),
            ("aiocr_storage_recoveries_total", "counter", |m| {
                m.storage_recoveries
            }),
            ("aiocr_storage_probes_total", "counter", |m| {
                m.storage_probes
            }),
            ("aiocr_cache_entries", "gauge", |m| m.cache.entries),
            ("aiocr_cache_bytes", "gauge", |m| m.cache.bytes),
        ];
        for &(name, kind, read) in gauges {
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (index, shard) in self.shards.iter().enumerate() {
                let value = read(
                    &shard
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner()),
                );
                let _ = writeln!(out, "{name}{{shard=\"{index}\"}} {value}");
            }
        }
    }

    fn render_protocol_errors(&self, out: &mut String) {
        let _ = writeln!(out, "# TYPE aiocr_protocol_errors_total counter");
        let mut totals: Vec<(u16, u64)> = Vec::new();
        for shard in self.shards.iter() {
            let shard = shard
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            for (status, count) in &shard.protocol_errors {
                match totals.iter_mut().find(|(code, _)| code == status) {
                    Some((_, total)) => *total += count,
                    None => totals.push((*status, *count)),
                }
            }
        }
        totals.sort_unstable();
        for (status, count) in totals {
            let _ = writeln!(
                out,
                "aiocr_protocol_errors_total{{status=\"{status}\"}} {count}"
            );
        }
    }

    fn render_storage_and_uploads(&self, out: &mut String) {
        let mut fsync = latency_histogram();
        let mut group = Histogram::<u64>::new_with_bounds(1, 1_000_000, 2).expect("static bounds");
        let mut recognize = latency_histogram();
        let mut queued = latency_histogram();
        let mut batch = Histogram::<u64>::new_with_bounds(1, 4096, 2).expect("static bounds");
        for shard in self.shards.iter() {
            let shard = shard
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let _ = fsync.add(&shard.fsync_us);
            let _ = group.add(&shard.fsync_group_size);
            let _ = recognize.add(&shard.recognize_us);
            let _ = queued.add(&shard.queued_us);
            let _ = batch.add(&shard.batch_size);
        }
        let _ = writeln!(
            out,
            "# HELP aiocr_fsync_duration_us Group-commit fsync time."
        );
        let _ = writeln!(out, "# TYPE aiocr_fsync_duration_us summary");
        write_summary(out, "aiocr_fsync_duration_us", "", &fsync);
        let _ = writeln!(out, "# TYPE aiocr_fsync_group_size summary");
        write_summary(out, "aiocr_fsync_group_size", "", &group);
        let _ = writeln!(out, "# TYPE aiocr_recognize_duration_us summary");
        write_summary(out, "aiocr_recognize_duration_us", "", &recognize);
        let _ = writeln!(out, "# TYPE aiocr_queue_wait_us summary");
        write_summary(out, "aiocr_queue_wait_us", "", &queued);
        let _ = writeln!(out, "# TYPE aiocr_batch_size summary");
        write_summary(out, "aiocr_batch_size", "", &batch);
        self.render_cache_lookups(out);
        let totals = self.totals();
        let counters = [
            ("aiocr_uploads_queue_full_total", totals.uploads_queue_full),
            ("aiocr_results_done_total", totals.results_done),
            ("aiocr_results_failed_total", totals.results_failed),
            ("aiocr_cache_hits_total", totals.cache_hits),
            ("aiocr_cache_misses_total", totals.cache_misses),
            ("aiocr_results_cache_hits_total", totals.results_cache_hits),
            ("aiocr_cache_fills_total", totals.cache_fills),
            (
                "aiocr_cache_fills_refused_total",
                totals.cache_fills_refused,
            ),
            (
                "aiocr_cache_cross_shard_lookups_total",
                totals.cache_cross_shard_lookups,
            ),
            (
                "aiocr_cache_messages_dropped_total",
                totals.cache_messages_dropped,
            ),
            (
                "aiocr_uploads_waiters_full_total",
                totals.uploads_waiters_full,
            ),
            (
                "aiocr_callbacks_delivered_total",
                totals.callbacks_delivered,
            ),
            ("aiocr_callbacks_failed_total", totals.callbacks_failed),
            ("aiocr_logins_failed_total", totals.logins_failed),
            (
                "aiocr_password_hash_queue_full_total",
                totals.password_hash_queue_full,
            ),
            ("aiocr_tokens_revoked_total", totals.tokens_revoked),
        ];
        for (name, value) in counters {
            let _ = writeln!(out, "# TYPE {name} counter\n{name} {value}");
        }
        let _ = writeln!(
            out,
            "# HELP aiocr_login_backoff_refusals_total Login attempts refused during a backoff.\n\
             # TYPE aiocr_login_backoff_refusals_total counter\n\
             aiocr_login_backoff_refusals_total{{scope=\"account\"}} {}\n\
             aiocr_login_backoff_refusals_total{{scope=\"address\"}} {}",
            totals.login_backoff_account, totals.login_backoff_address
        );
        let _ = writeln!(out, "# TYPE aiocr_cache_evictions_total counter");
        for (reason, value) in [
            ("capacity", totals.cache_evicted_capacity),
            ("expired", totals.cache_expired),
            ("reported", totals.cache_evicted_reported),
        ] {
            let _ = writeln!(
                out,
                "aiocr_cache_evictions_total{{reason=\"{reason}\"}} {value}"
            );
        }
    }

    fn render_cache_lookups(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP aiocr_cache_lookup_duration_us An upload's answer-cache lookup: on its own \
             shard (local) or a hop to the shard owning the entry (remote)."
        );
        let _ = writeln!(out, "# TYPE aiocr_cache_lookup_duration_us summary");
        for index in 0..4 {
            let mut merged = latency_histogram();
            for shard in self.shards.iter() {
                let shard = shard
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                let _ = merged.add(&shard.cache_lookup_us[index]);
            }
            let place = if index >= 2 { "remote" } else { "local" };
            let found = index % 2 == 1;
            let labels = format!("where=\"{place}\",found=\"{found}\"");
            write_summary(out, "aiocr_cache_lookup_duration_us", &labels, &merged);
        }
    }

    /// The shards whose storage failed and has not recovered, with why.
    pub fn storage_failures(&self) -> Vec<(u16, String)> {
        self.shards
            .iter()
            .enumerate()
            .filter_map(|(index, shard)| {
                let shard = shard
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                let failure = shard.storage_failure.clone()?;
                Some((index as u16, failure))
            })
            .collect()
    }

    /// The counters of every shard added up, and the recognition quantiles: what `/metrics`
    /// shows, as numbers (the console's server page reads them as JSON).
    pub fn totals(&self) -> Totals {
        let mut totals = Totals::default();
        let mut recognize = latency_histogram();
        let mut queued = latency_histogram();
        for shard in self.shards.iter() {
            let shard = shard
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            totals.connections_open += shard.connections_open;
            totals.connections_accepted += shard.connections_accepted;
            totals.connections_refused += shard.connections_refused;
            totals.uploads_accepted += shard.uploads_accepted;
            totals.uploads_queue_full += shard.uploads_queue_full;
            totals.uploads_waiters_full += shard.uploads_waiters_full;
            totals.results_done += shard.results_done;
            totals.results_failed += shard.results_failed;
            totals.add_cache(&shard);
            totals.callbacks_delivered += shard.callbacks_delivered;
            totals.callbacks_failed += shard.callbacks_failed;
            totals.logins_failed += shard.logins_failed;
            totals.login_backoff_account += shard.login_backoff_account;
            totals.login_backoff_address += shard.login_backoff_address;
            totals.password_hash_queue_full += shard.password_hash_queue_full;
            totals.tokens_revoked += shard.tokens_revoked;
            let _ = recognize.add(&shard.recognize_us);
            let _ = queued.add(&shard.queued_us);
        }
        totals.recognize_us_p50 = recognize.value_at_quantile(0.5);
        totals.recognize_us_p99 = recognize.value_at_quantile(0.99);
        totals.queue_wait_us_p50 = queued.value_at_quantile(0.5);
        totals.queue_wait_us_p99 = queued.value_at_quantile(0.99);
        totals
    }
}

/// Every shard's counters added up (the names are those of `/metrics` without `aiocr_` and
/// `_total`), and the recognition time and queue wait quantiles in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    pub connections_open: u64,
    pub connections_accepted: u64,
    pub connections_refused: u64,
    pub uploads_accepted: u64,
    pub uploads_queue_full: u64,
    pub uploads_waiters_full: u64,
    pub results_done: u64,
    pub results_failed: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub results_cache_hits: u64,
    pub cache_fills: u64,
    pub cache_fills_refused: u64,
    pub cache_evicted_capacity: u64,
    pub cache_expired: u64,
    pub cache_evicted_reported: u64,
    pub cache_cross_shard_lookups: u64,
    pub cache_messages_dropped: u64,
    pub cache_entries: u64,
    pub cache_bytes: u64,
    pub callbacks_delivered: u64,
    pub callbacks_failed: u64,
    pub logins_failed: u64,
    pub login_backoff_account: u64,
    pub login_backoff_address: u64,
    pub password_hash_queue_full: u64,
    pub tokens_revoked: u64,
    pub recognize_us_p50: u64,
    pub recognize_us_p99: u64,
    pub queue_wait_us_p50: u64,
    pub queue_wait_us_p99: u64,
}

impl Totals {
    fn add_cache(&mut self, shard: &ShardMetrics) {
        let cache = &shard.cache;
        self.cache_hits += cache.hits;
        self.cache_misses += cache.misses;
        self.results_cache_hits += shard.results_cache_hits;
        self.cache_fills += cache.fills;
        self.cache_fills_refused += cache.fills_refused;
        self.cache_evicted_capacity += cache.evicted_capacity;
        self.cache_expired += cache.expired;
        self.cache_evicted_reported += cache.evicted_reported;
        self.cache_cross_shard_lookups += shard.cache_cross_shard_lookups;
        self.cache_messages_dropped += shard.cache_messages_dropped;
        self.cache_entries += cache.entries;
        self.cache_bytes += cache.bytes;
    }
}

/// Jobs waiting, in all and per kind, and what the queues hold at most.
fn render_queues(out: &mut String, queues: &[(&str, usize, usize)]) {
    let depth: usize = queues.iter().map(|(_, depth, _)| depth).sum();
    let capacity: usize = queues.iter().map(|(_, _, capacity)| capacity).sum();
    let _ = writeln!(out, "# HELP aiocr_queue_depth Jobs waiting, every kind.");
    let _ = writeln!(
        out,
        "# TYPE aiocr_queue_depth gauge\naiocr_queue_depth {depth}"
    );
    let _ = writeln!(
        out,
        "# TYPE aiocr_queue_capacity gauge\naiocr_queue_capacity {capacity}"
    );
    let _ = writeln!(out, "# TYPE aiocr_queue_kind_depth gauge");
    for (kind, depth, _) in queues {
        let _ = writeln!(out, "aiocr_queue_kind_depth{{kind=\"{kind}\"}} {depth}");
    }
    let _ = writeln!(out, "# TYPE aiocr_queue_kind_capacity gauge");
    for (kind, _, capacity) in queues {
        let _ = writeln!(
            out,
            "aiocr_queue_kind_capacity{{kind=\"{kind}\"}} {capacity}"
        );
    }
}

/// The password hash queue (src/password_pool.rs): jobs waiting and room.
pub fn render_password_queue(out: &mut String, depth: usize, capacity: usize) {
    let _ = writeln!(
        out,
        "# HELP aiocr_password_hash_queue_depth Passwords waiting for a hash thread.\n\
         # TYPE aiocr_password_hash_queue_depth gauge\naiocr_password_hash_queue_depth {depth}\n\
         # TYPE aiocr_password_hash_queue_capacity gauge\n\
         aiocr_password_hash_queue_capacity {capacity}"
    );
}

/// The C allocator's counts (src/heap.rs), when it has them: a live heap that stays flat while
/// RSS steps up is memory glibc keeps after it was freed, not a leak.
pub fn render_heap(out: &mut String) {
    let Some(counts) = crate::heap::counts() else {
        return;
    };
    let _ = writeln!(
        out,
        "# HELP aiocr_heap_in_use_bytes Bytes the C allocator has handed out and not got back.\n\
         # TYPE aiocr_heap_in_use_bytes gauge\naiocr_heap_in_use_bytes {}\n\
         # HELP aiocr_heap_held_bytes Bytes the C allocator holds from the system (in use or free).\n\
         # TYPE aiocr_heap_held_bytes gauge\naiocr_heap_held_bytes {}",
        counts.in_use_bytes, counts.held_bytes
    );
}

fn write_summary(out: &mut String, name: &str, labels: &str, histogram: &Histogram<u64>) {
    let separator = if labels.is_empty() { "" } else { "," };
    for quantile in [0.5, 0.9, 0.99, 0.999] {
        let value = histogram.value_at_quantile(quantile);
        let _ = writeln!(
            out,
            "{name}{{{labels}{separator}quantile=\"{quantile}\"}} {value}"
        );
    }
    let braces = if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    };
    let _ = writeln!(out, "{name}_count{braces} {}", histogram.len());
    let sum = histogram.mean() * histogram.len() as f64;
    let _ = writeln!(out, "{name}_sum{braces} {sum:.0}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn heap_gauges_are_rendered_in_use_within_held() {
        let mut out = String::new();
        render_heap(&mut out);
        let gauge = |name: &str| -> u64 {
            let line = out
                .lines()
                .find(|line| line.starts_with(&format!("{name} ")))
                .unwrap_or_else(|| panic!("{name} in {out}"));
            line[name.len() + 1..]
                .parse()
                .expect("a whole number of bytes")
        };
        let in_use = gauge("aiocr_heap_in_use_bytes");
        assert!(in_use > 0, "this test itself allocated");
        assert!(in_use <= gauge("aiocr_heap_held_bytes"));
    }

    #[test]
    fn renders_merged_quantiles() {
        let registry = Registry::new(2, &["login", "point"]);
        registry.shard(0).record_request(1, 200, 100);
        registry.shard(1).record_request(1, 401, 300);
        registry.shard(1).record_protocol_error(431);
        registry.shard(0).connections_open = 3;
        let text = registry.render(&[("ocr", 5, 1024), ("detect", 0, 64)]);
        assert!(
            text.contains("aiocr_request_duration_us_count{route=\"point\"} 2"),
            "{text}"
        );
        assert!(text.contains("aiocr_requests_total{route=\"point\",status=\"2xx\"} 1"));
        assert!(text.contains("aiocr_requests_total{route=\"point\",status=\"4xx\"} 1"));
        let p99: u64 = text
            .lines()
            .find_map(|line| {
                line.strip_prefix("aiocr_request_duration_us{route=\"point\",quantile=\"0.99\"} ")
            })
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            (297..=303).contains(&p99),
            "p99 {p99} not within 1 % of 300"
        );
        assert!(text.contains("aiocr_protocol_errors_total{status=\"431\"} 1"));
        assert!(text.contains("aiocr_connections_open{shard=\"0\"} 3"));
        assert!(text.contains("aiocr_queue_depth 5"));
        assert!(text.contains("aiocr_queue_capacity 1088"));
        assert!(text.contains("aiocr_queue_kind_depth{kind=\"ocr\"} 5"));
    }

    #[test]
    fn totals_are_the_rendered_counters() {
        let registry = Registry::new(2, &["point"]);
        registry.shard(0).results_done = 4;
        registry.shard(1).results_done = 3;
        registry.shard(1).cache.misses = 2;
        registry.shard(0).cache.evicted_reported = 1;
        registry.shard(1).cache.entries = 9;
        registry.shard(0).connections_open = 1;
        registry.shard(1).connections_open = 5;
        let totals = registry.totals();
        assert_eq!(
            (
                totals.results_done,
                totals.cache_misses,
                totals.connections_open
            ),
            (7, 2, 6)
        );
        registry.shard(1).login_backoff_address = 3;
        registry.shard(0).logins_failed = 9;
        let mut text = registry.render(&[("ocr", 0, 8)]);
        assert!(text.contains("aiocr_results_done_total 7"), "{text}");
        assert!(text.contains("aiocr_cache_misses_total 2"));
        assert!(text.contains("aiocr_logins_failed_total 9"));
        assert!(text.contains("aiocr_login_backoff_refusals_total{scope=\"address\"} 3"));
        assert!(text.contains("aiocr_login_backoff_refusals_total{scope=\"account\"} 0"));
        render_password_queue(&mut text, 2, 32);
        assert!(text.contains("aiocr_password_hash_queue_depth 2\n"));
        assert!(text.contains("aiocr_password_hash_queue_capacity 32\n"));
        assert!(text.contains("aiocr_cache_evictions_total{reason=\"reported\"} 1"));
        assert!(text.contains("aiocr_cache_entries{shard=\"1\"} 9"));
        assert_eq!(
            (totals.cache_evicted_reported, totals.cache_entries),
            (1, 9)
        );
    }
}
