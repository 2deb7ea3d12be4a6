//! Logging: human-readable by default, JSON with `HOOKRELAY_LOG_FORMAT=json`; level from `RUST_LOG`.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::LogFormat;

/// Levels when `RUST_LOG` is not set.
pub const DEFAULT_FILTER: &str = "info,sqlx=warn,lapin=off";

/// Installs the global subscriber (a second call does nothing).
pub fn init(format: LogFormat) {
    // lapin logs every connection failure at ERROR, including the ordinary end of a connection
    // at shutdown; hookrelay logs the failures it handles itself (once, with what it does next),
    // so lapin is silent unless RUST_LOG asks for it.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Json => registry.with(fmt::layer().json().flatten_event(true)).try_init(),
        LogFormat::Text => registry.with(fmt::layer().with_target(false)).try_init(),
    };
}
