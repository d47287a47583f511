//! Logs, traces and metrics.
//!
//! - **Logs**: structured, one line per event, to stderr. Fields are an allow-list chosen at
//!   each call site; no identity data is ever a field. Log lines are events only: spans never
//!   add fields to them, so the lines look the same with tracing on or off. Lines are written
//!   by one writer thread ([`crate::log_writer`]), never dropped, and flushed when `main` ends.
//! - **Traces**: when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`)
//!   is set, spans go over OTLP/gRPC through a batch span processor: one per request
//!   (method, route template, status, request id), one per use case (`vault.*`), and the
//!   store's appends to the access trail and commits (`store.*`). Span fields are allow-listed
//!   at each `#[instrument]`, which skips every argument. When the variable is unset there is
//!   no exporter and no span is even created.
//! - **Metrics**: the `metrics` facade, rendered by the Prometheus exporter into `/metrics`
//!   beside the gauges the handler computes. Labels are methods, route templates, statuses,
//!   purposes and outcomes: never a path, an identifier or a person.

use std::sync::OnceLock;
use std::time::Duration;

use axum::http::Method;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider, SpanData, SpanExporter};
use tracing::{Level, Metadata};
use tracing_subscriber::filter::{DynFilterFn, FilterExt, filter_fn};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::log_writer::{self, LogFlush};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// JSON lines (production).
    Json,
    /// Human-readable.
    Text,
}

/// The service name traces carry when `OTEL_SERVICE_NAME` is unset.
pub const DEFAULT_SERVICE_NAME: &str = "reporter-vault";

/// `rv_http_request_duration_seconds{method, route, status}`.
pub const HTTP_REQUEST_DURATION: &str = "rv_http_request_duration_seconds";
/// `rv_http_requests_total{method, route, status}`.
pub const HTTP_REQUESTS_TOTAL: &str = "rv_http_requests_total";

const HTTP_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const APPEND_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Keeps the trace pipeline alive; dropping it flushes the spans still queued and shuts the
/// exporter down (within 5 s, so an unreachable collector cannot hold up an exit). Keep it
/// until the end of `main`, inside the Tokio runtime the exporter's channel runs on.
#[must_use = "dropping the guard stops trace export"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
    logs: LogFlush,
}

impl TelemetryGuard {
    /// Whether spans are exported.
    pub fn traces_enabled(&self) -> bool {
        self.provider.is_some()
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown_with_timeout(Duration::from_secs(5))
        {
            tracing::warn!(error = %e, "could not flush the last spans to the OTLP collector");
        }
        self.logs.flush();
    }
}

/// Installs the global subscriber (logs, and traces when an OTLP endpoint is configured) and
/// the metrics recorder. `RUST_LOG` overrides the default `info` filter of the logs.
///
/// Call it inside the Tokio runtime (`Runtime::enter`): the gRPC channel is created on it.
pub fn init(format: LogFormat) -> TelemetryGuard {
    // sqlx logs statements at debug/info with bound values: keep it at warn unless asked.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,hyper=warn,reqwest=warn"));
    // Log lines are events only: a span never adds fields to them.
    let log_filter = filter.and(filter_fn(|m: &Metadata<'_>| m.is_event()));
    let (sink, logs) = log_writer::spawn(std::io::stderr(), log_writer::QUEUE_LINES);
    let log_layer: Box<dyn Layer<Registry> + Send + Sync> = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(sink)
            .with_filter(log_filter)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(sink)
            .with_filter(log_filter)
            .boxed(),
    };
    let mut layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = vec![log_layer];

    let (provider, trace_error) = if otlp_configured() {
        match tracer_provider() {
            Ok(p) => (Some(p), None),
            Err(e) => (None, Some(e)),
        }
    } else {
        (None, None)
    };
    if let Some(p) = &provider {
        let layer = tracing_opentelemetry::layer()
            .with_tracer(p.tracer("reporter-vault"))
            .with_threads(false)
            .with_filter(DynFilterFn::new(exported));
        layers.push(layer.boxed());
    }
    let _ = tracing_subscriber::registry().with(layers).try_init();
    metrics_handle();
    if provider.is_some() {
        metrics::describe_counter!(
            TRACE_EXPORT_FAILURES,
            metrics::Unit::Count,
            "Span batches the OTLP collector did not take (their spans are lost)."
        );
        metrics::counter!(TRACE_EXPORT_FAILURES).increment(0);
    }
    if let Some(e) = trace_error {
        tracing::error!(error = %e, "OTLP trace export is configured but could not start; running without traces");
    } else if provider.is_some() {
        tracing::info!("exporting traces over OTLP/gRPC");
    }
    TelemetryGuard { provider, logs }
}

fn env_set(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| !v.trim().is_empty())
}

/// An endpoint is set and neither `OTEL_SDK_DISABLED=true` nor `OTEL_TRACES_EXPORTER=none`.
fn otlp_configured() -> bool {
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
        || std::env::var("OTEL_TRACES_EXPORTER").is_ok_and(|v| v.eq_ignore_ascii_case("none"));
    !disabled
        && (env_set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") || env_set("OTEL_EXPORTER_OTLP_ENDPOINT"))
}

/// The exporter reads the standard variables itself: endpoint, headers, timeout,
/// compression; the batch processor reads `OTEL_BSP_*`, the sampler `OTEL_TRACES_SAMPLER`.
fn tracer_provider() -> Result<SdkTracerProvider, String> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
        .map_err(|e| e.to_string())?;
    let service = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_owned());
    let resource = Resource::builder()
        .with_service_name(service)
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(BatchSpanProcessor::builder(LoggedExporter(exporter)).build())
        .with_resource(resource)
        .build())
}

/// `rv_trace_export_failures_total` (present only while traces are exported).
pub const TRACE_EXPORT_FAILURES: &str = "rv_trace_export_failures_total";

/// The OTLP exporter, with each failed export logged and counted: a collector that cannot be
/// reached costs a warning per batch, never a request.
#[derive(Debug)]
struct LoggedExporter<E>(E);

impl<E: SpanExporter> SpanExporter for LoggedExporter<E> {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        let spans = batch.len();
        let export = self.0.export(batch);
        async move {
            let result = export.await;
            if let Err(e) = &result {
                metrics::counter!(TRACE_EXPORT_FAILURES).increment(1);
                tracing::warn!(error = %e, spans, "could not export spans to the OTLP collector; they are lost");
            }
            result
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.0.set_resource(resource);
    }
}

/// What goes to the collector: the service's own spans and events at `info` and above
/// (never a dependency's: not the exporter's own gRPC calls, not sqlx), and the store's
/// spans only inside an operation, so the background jobs' bookkeeping commits do not each
/// open a trace.
fn exported(meta: &Metadata<'_>, cx: &Context<'_, Registry>) -> bool {
    if *meta.level() > Level::INFO || !meta.target().starts_with("vault_") {
        return false;
    }
    !(meta.is_span() && meta.target().starts_with("vault_storage") && cx.lookup_current().is_none())
}

/// Renames a request's span once its route template is known (`POST /v1/disclosures`). The
/// exported span has usually started by then (its children did), and a started span only
/// takes a new name through the OpenTelemetry API. A no-op when traces are off.
pub fn rename_span(span: &tracing::Span, name: String) {
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    if span.is_disabled() {
        return;
    }
    span.context().span().update_name(name);
}

// ------------------------------------------------------------------------------------------
// Metrics
// ------------------------------------------------------------------------------------------

static METRICS: OnceLock<PrometheusHandle> = OnceLock::new();

/// The Prometheus recorder's handle, installing the recorder on first use (the CLI installs
/// it at start; an in-process server at its first request).
pub fn metrics_handle() -> &'static PrometheusHandle {
    METRICS.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(HTTP_REQUEST_DURATION.into()), HTTP_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full(vault_storage::obs::AUDIT_APPEND_DURATION.into()),
                    APPEND_BUCKETS,
                )
            })
            .map(PrometheusBuilder::build_recorder)
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed; /metrics shows only gauges");
        }
        describe_metrics();
        // Histogram samples wait in a buffer until rendered; drain them even if no one scrapes.
        let upkeep = handle.clone();
        let _ = std::thread::Builder::new()
            .name("rv-metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_secs(5));
                    upkeep.run_upkeep();
                }
            });
        handle
    })
}

fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_histogram};
    describe_histogram!(
        HTTP_REQUEST_DURATION,
        Unit::Seconds,
        "HTTP request latency by method, route template and status."
    );
    describe_counter!(
        HTTP_REQUESTS_TOTAL,
        Unit::Count,
        "HTTP requests by method, route template and status."
    );
    describe_counter!(
        vault_domain::obs::DISCLOSURES_TOTAL,
        Unit::Count,
        "Disclosures by purpose and outcome (requested, approved at quorum, denied, opened; \
         expired: an open attempt found the approval lapsed)."
    );
    describe_histogram!(
        vault_storage::obs::AUDIT_APPEND_DURATION,
        Unit::Seconds,
        "Time to append one event to the access trail (statements inside its transaction)."
    );
    describe_counter!(
        vault_storage::obs::AUDIT_APPEND_FAILURES,
        Unit::Count,
        "Access-trail appends that failed, in the statement or at commit."
    );
    // Present from the start, so an alert or a rate has a series before the first event.
    metrics::counter!(vault_storage::obs::AUDIT_APPEND_FAILURES).increment(0);
    vault_domain::obs::register_disclosure_series();
}

/// A request's method as a label: the standard methods by name, anything else `_OTHER`
/// (a method token is whatever the client sent, an ID number included).
pub fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "_OTHER",
    }
}

/// Counts a finished request and its latency.
pub fn observe_request(method: &'static str, route: &'static str, status: u16, took: Duration) {
    // An in-process server (the tests) has no `init`: its first request installs the recorder.
    metrics_handle();
    let status = status.to_string();
    metrics::counter!(
        HTTP_REQUESTS_TOTAL,
        "method" => method,
        "route" => route,
        "status" => status.clone(),
    )
    .increment(1);
    metrics::histogram!(
        HTTP_REQUEST_DURATION,
        "method" => method,
        "route" => route,
        "status" => status,
    )
    .record(took.as_secs_f64());
}

/// Appends the facade's metrics and the process basics to a Prometheus text exposition.
pub fn render_metrics(out: &mut String) {
    out.push_str(&metrics_handle().render());
    process_metrics(out);
}

/// When the process started, in Unix seconds: the boot time (`/proc/stat`) plus the process's
/// start in clock ticks after boot (`/proc/self/stat`); `None` off Linux.
fn start_time(stat_fields: &[&str]) -> Option<u64> {
    let boot: u64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // Field 22 of `/proc/self/stat`; the slice starts at field 3.
    let ticks: u64 = stat_fields.get(22 - 3)?.parse().ok()?;
    Some(boot.saturating_add(ticks / USER_HZ))
}

/// Clock ticks per second in `/proc`: 100 on every Linux architecture.
const USER_HZ: u64 = 100;

/// `process_*` as the Prometheus client libraries name them, from `/proc/self` (Linux; any
/// value that cannot be read is left out).
fn process_metrics(out: &mut String) {
    use std::fmt::Write as _;
    let mut family = |name: &str, kind: &str, help: &str, value: String| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    };
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may contain spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |n: usize| -> Option<u64> { fields.get(n.checked_sub(3)?)?.parse().ok() };
    // utime + stime, in clock ticks.
    if let (Some(user), Some(system)) = (field(14), field(15)) {
        let ticks = user.saturating_add(system);
        family(
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            format!("{}.{:02}", ticks / USER_HZ, ticks % USER_HZ),
        );
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |key: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    if let Some(rss) = kib("VmRSS:") {
        family(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            rss.saturating_mul(1024).to_string(),
        );
    }
    if let Some(vsz) = kib("VmSize:") {
        family(
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            vsz.saturating_mul(1024).to_string(),
        );
    }
    if let Some(threads) = kib("Threads:") {
        family(
            "process_threads",
            "gauge",
            "OS threads in the process.",
            threads.to_string(),
        );
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        family(
            "process_open_fds",
            "gauge",
            "Open file descriptors.",
            dir.count().to_string(),
        );
    }
    let max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find_map(|l| l.strip_prefix("Max open files"))
                .and_then(|v| v.split_whitespace().next().map(str::to_owned))
        })
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(max) = max_fds {
        family(
            "process_max_fds",
            "gauge",
            "Maximum open file descriptors.",
            max.to_string(),
        );
    }
    if let Some(started) = start_time(&fields) {
        family(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since the Unix epoch in seconds.",
            started.to_string(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_methods_are_not_labels() {
        assert_eq!(method_label(&Method::GET), "GET");
        let odd = Method::from_bytes(b"11010519491231002X").unwrap_or(Method::GET);
        assert_eq!(method_label(&odd), "_OTHER");
    }
}
