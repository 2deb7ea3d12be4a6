//! What every hookrelay component shares: configuration, the event model, Standard Webhooks
//! signatures, the PostgreSQL schema, the AMQP topology, the retry policy and the metrics.

pub mod activity;
pub mod amqp;
pub mod circuit;
pub mod config;
pub mod context;
pub mod custom_headers;
pub mod db;
pub mod duration;
pub mod ed25519;
pub mod event;
pub mod filter;
pub mod health;
pub mod ids;
pub mod jobs;
pub mod manual_retry;
pub mod matching;
pub mod metrics;
pub mod ops;
pub mod ordering;
pub mod redis_keys;
pub mod retry;
pub mod retry_store;
pub mod settings;
pub mod shutdown;
pub mod signature;
pub mod signing_keys;
pub mod ssrf;
pub mod startup;
pub mod stats;
pub mod stats_store;
pub mod telemetry;
pub mod test_event;
pub mod tokens;
pub mod webhook_keys;
pub mod webhooks;

pub use config::Config;
pub use context::Context;

/// The crate's version, sent as `user-agent: hookrelay/<version>`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Installs the process-wide rustls crypto provider. Call first thing in `main` and in tests:
/// several crates pull rustls in, and without an explicit default it can't pick one.
pub fn install_crypto_provider() {
    // An error only means a provider is already installed, which is what we want.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

#[cfg(feature = "testing")]
pub mod testing;
