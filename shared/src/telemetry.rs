//! Logging: human-readable by default, JSON with `HOOKRELAY_LOG_FORMAT=json`; level from `RUST_LOG`.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::LogFormat;

/// Installs the global subscriber (a second call does nothing).
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,lapin=warn"));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Json => registry.with(fmt::layer().json().flatten_event(true)).try_init(),
        LogFormat::Text => registry.with(fmt::layer().with_target(false)).try_init(),
    };
}
