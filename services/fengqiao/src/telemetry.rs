//! Logging: `tracing` everywhere; JSON lines when stderr is not a terminal, readable text when it
//! is. The filter comes from `RUST_LOG` (default `info`).
//!
//! Metrics: code anywhere records through the `metrics` facade (`metrics::gauge!`, `counter!`,
//! `histogram!`); [`serve_metrics`] installs the process-wide Prometheus recorder and its scrape
//! endpoint. Without it the facade records nothing. Names: docs/read-models.md, "Metrics".
//!
//! Personal data never reaches the logs. Fengqiao's own log lines carry ids, codes and reasons,
//! never parties; `Debug` of names, phone and ID numbers is masked. Some dependencies log request
//! data at debug level (tokio-postgres prints every statement's parameters, which include the
//! parties of a case), so [`QUIET`] caps them at `info` whatever `RUST_LOG` asks for.

use std::io::IsTerminal;

use tracing::Subscriber;
use tracing_subscriber::filter::{FilterExt, LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

/// Dependencies whose debug and trace output can hold request data (SQL parameters, message
/// payloads, headers): never logged below `info`, even with `RUST_LOG=trace`.
pub const QUIET: &[&str] =
    &["tokio_postgres", "postgres_types", "async_nats", "h2", "hyper", "hyper_util", "tonic", "tower"];

/// A subscriber logging what `spec` (an `EnvFilter` directive such as `info,fengqiao=debug`)
/// enables, except below `info` from [`QUIET`] targets, to `writer`; JSON lines when `json`.
pub fn subscriber<W>(spec: &str, json: bool, writer: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let wanted = EnvFilter::try_new(spec).unwrap_or_else(|_| EnvFilter::new("info"));
    let quiet = QUIET
        .iter()
        .fold(Targets::new().with_default(LevelFilter::TRACE), |t, target| t.with_target(*target, LevelFilter::INFO));
    let filter = wanted.and(quiet);
    let layer = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_writer(writer)
            .with_filter(filter)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer().with_writer(writer).with_filter(filter).boxed()
    };
    Box::new(tracing_subscriber::registry().with(layer))
}

/// Installs the global subscriber (and routes `log` records into it). Safe to call more than
/// once (later calls do nothing).
pub fn init() {
    let spec = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned());
    let _ = subscriber(&spec, !std::io::stderr().is_terminal(), std::io::stderr).try_init();
}

/// Installs the Prometheus recorder for everything recorded through the `metrics` facade and
/// answers scrapes on `addr` (HTTP, any path). Call once, inside the Tokio runtime.
///
/// # Errors
/// The address cannot be bound, or a recorder is installed already.
pub fn serve_metrics(addr: std::net::SocketAddr) -> anyhow::Result<()> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .map_err(|e| anyhow::anyhow!("serving metrics on {addr} (FENGQIAO_METRICS_ADDR): {e}"))?;
    tracing::info!(%addr, "serving Prometheus metrics");
    Ok(())
}
