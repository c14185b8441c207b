//! Prometheus metrics, made with `prometheus-client` and served as text at `/metrics`.
//!
//! Requests and their latency by operation and status, uploads by outcome and error code,
//! signatures the server makes, cache hits, the database pool, and the expiry horizon:
//! seconds until the earliest current timestamp or snapshot (what the server re-signs)
//! and the earliest current root, targets or delegation (what only publishers can renew)
//! expires. Operators alert on the second long before anything becomes unpullable.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub operation: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UploadLabels {
    /// `accepted` or `refused`.
    pub outcome: &'static str,
    /// The error code of a refusal, empty when accepted.
    pub code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RoleLabels {
    pub role: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    /// `hit` or `miss`.
    pub result: &'static str,
}

fn latency_histogram() -> Histogram {
    // 0.1 ms to about 3 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// Every metric the server keeps.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<OperationLabels, Histogram, fn() -> Histogram>,
    pub uploads: Family<UploadLabels, Counter>,
    pub signatures: Family<RoleLabels, Counter>,
    pub cache: Family<CacheLabels, Counter>,
    /// Metadata responses sent compressed (gzip or zstd).
    pub compressed: Counter,
    pool_size: Gauge,
    pool_idle: Gauge,
    server_horizon: Gauge,
    client_horizon: Gauge,
    cache_bytes: Gauge,
    cache_entries: Gauge,
    cache_evictions: Gauge,
    /// The series every read answered from memory touches, looked up once (on the first
    /// such read, so that they appear when they first count).
    hot: std::sync::OnceLock<HotSeries>,
}

#[derive(Debug)]
struct HotSeries {
    ok: Counter,
    latency: Histogram,
    hit: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("notar_server");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<OperationLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let uploads = Family::<UploadLabels, Counter>::default();
        let signatures = Family::<RoleLabels, Counter>::default();
        let cache = Family::<CacheLabels, Counter>::default();
        let compressed = Counter::default();
        registry.register(
            "compressed_responses",
            "Metadata responses sent compressed (Content-Encoding: gzip or zstd)",
            compressed.clone(),
        );
        let (pool_size, pool_idle) = (Gauge::default(), Gauge::default());
        let (server_horizon, client_horizon) = (Gauge::default(), Gauge::default());
        let (cache_bytes, cache_entries, cache_evictions) =
            (Gauge::default(), Gauge::default(), Gauge::default());
        registry.register(
            "cache_bytes",
            "Bytes the metadata cache holds (identity, gzip and zstd)",
            cache_bytes.clone(),
        );
        registry.register(
            "cache_entries",
            "Documents the metadata cache holds",
            cache_entries.clone(),
        );
        registry.register(
            "cache_evictions",
            "Documents evicted from the metadata cache to keep its byte budget",
            cache_evictions.clone(),
        );
        registry.register("http_requests", "Requests answered", requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "Time to answer a request",
            latency.clone(),
        );
        registry.register("uploads", "Updates accepted and refused", uploads.clone());
        registry.register(
            "signatures",
            "Metadata the server signed (timestamps, snapshots)",
            signatures.clone(),
        );
        registry.register(
            "cache_lookups",
            "Current-metadata cache lookups",
            cache.clone(),
        );
        registry.register(
            "db_pool_connections",
            "Database connections open",
            pool_size.clone(),
        );
        registry.register(
            "db_pool_idle_connections",
            "Database connections idle",
            pool_idle.clone(),
        );
        registry.register(
            "server_signed_expiry_horizon_seconds",
            "Seconds until the earliest current timestamp or snapshot expires (-1: none)",
            server_horizon.clone(),
        );
        registry.register(
            "client_signed_expiry_horizon_seconds",
            "Seconds until the earliest current root, targets or delegation expires (-1: none)",
            client_horizon.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            uploads,
            signatures,
            cache,
            compressed,
            pool_size,
            pool_idle,
            server_horizon,
            client_horizon,
            cache_bytes,
            cache_entries,
            cache_evictions,
            hot: std::sync::OnceLock::new(),
        }
    }
}

impl Metrics {
    /// Counts one answered request.
    pub fn request(&self, operation: &'static str, status: u16, took: Duration) {
        self.requests
            .get_or_create(&RequestLabels { operation, status })
            .inc();
        self.latency
            .get_or_create(&OperationLabels { operation })
            .observe(took.as_secs_f64());
    }

    /// Counts one metadata read answered from memory (`current`: of current metadata, a
    /// cache hit), as [`Metrics::request`] and [`Metrics::cache_lookup`] would, without
    /// looking its series up each time.
    pub fn memory_read(&self, status: u16, current: bool, took: Duration) {
        if status != 200 {
            if current {
                self.cache_lookup(true);
            }
            self.request("get_metadata", status, took);
            return;
        }
        let hot = self.hot.get_or_init(|| {
            let operation = "get_metadata";
            HotSeries {
                ok: self
                    .requests
                    .get_or_create(&RequestLabels {
                        operation,
                        status: 200,
                    })
                    .clone(),
                latency: self
                    .latency
                    .get_or_create(&OperationLabels { operation })
                    .clone(),
                hit: self
                    .cache
                    .get_or_create(&CacheLabels { result: "hit" })
                    .clone(),
            }
        });
        hot.ok.inc();
        hot.latency.observe(took.as_secs_f64());
        if current {
            hot.hit.inc();
        }
    }

    /// Counts an update accepted (`code` None) or refused with `code`.
    pub fn upload(&self, code: Option<&'static str>) {
        let labels = match code {
            None => UploadLabels {
                outcome: "accepted",
                code: "",
            },
            Some(code) => UploadLabels {
                outcome: "refused",
                code,
            },
        };
        self.uploads.get_or_create(&labels).inc();
    }

    pub fn signed(&self, role: &'static str) {
        self.signatures.get_or_create(&RoleLabels { role }).inc();
    }

    pub fn cache_lookup(&self, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        self.cache.get_or_create(&CacheLabels { result }).inc();
    }

    /// The exposition text, with the gauges read now: the pool's (open, idle) connections
    /// and the two expiry horizons in seconds (`None`: no such role).
    pub fn render(
        &self,
        pool: (u32, u32),
        horizons: (Option<i64>, Option<i64>),
        cache: (usize, usize, u64),
    ) -> String {
        let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.cache_entries.set(gauge(cache.0 as u64));
        self.cache_bytes.set(gauge(cache.1 as u64));
        self.cache_evictions.set(gauge(cache.2));
        self.pool_size.set(i64::from(pool.0));
        self.pool_idle.set(i64::from(pool.1));
        self.server_horizon.set(horizons.0.unwrap_or(-1));
        self.client_horizon.set(horizons.1.unwrap_or(-1));
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            tracing::error!("encoding the metrics failed");
        }
        text
    }
}
