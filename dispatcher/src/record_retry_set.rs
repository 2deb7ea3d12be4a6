//! The scheduler's retry set in Redis as the recorder and the deferral writer add to it, over
//! a lazily (re)connected connection: Redis being down never stops either of them, and what
//! they could not add the scheduler's reconcile adds from PostgreSQL.

use std::time::Duration;

use hookrelay_shared::{Context, retry_store, retry_store::RetryEntry};
use redis::aio::ConnectionManager;

/// How long connecting, or one ZADD, may take before the entries are left to the reconcile.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Why entries were not added (the caller logs it, in its own words).
pub enum Unscheduled {
    /// No connection could be made.
    NoConnection,
    /// Redis answered with an error.
    Failed(redis::RedisError),
    /// Redis did not answer in time; the connection is dropped and made again next time.
    TimedOut,
}

/// A lazily (re)connected connection to the retry set.
pub struct RetrySet {
    url: String,
    conn: Option<ConnectionManager>,
}

impl RetrySet {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            conn: None,
        }
    }

    /// Adds `entries` to the namespace's retry set, connecting first if need be.
    pub async fn schedule(&mut self, ctx: &Context, entries: &[RetryEntry]) -> Result<(), Unscheduled> {
        self.update(ctx, entries, &[]).await
    }

    /// Adds `add` to the namespace's retry set and removes the entries of the attempts `made`
    /// ([`retry_store::update`]), connecting first if need be.
    pub async fn update(
        &mut self,
        ctx: &Context,
        add: &[RetryEntry],
        made: &[RetryEntry],
    ) -> Result<(), Unscheduled> {
        if self.conn.is_none() {
            match redis::Client::open(self.url.as_str()) {
                Ok(c) => match tokio::time::timeout(TIMEOUT, c.get_connection_manager()).await {
                    Ok(Ok(m)) => self.conn = Some(m),
                    Ok(Err(e)) => tracing::warn!(error = %e, "redis connect failed"),
                    Err(_) => tracing::warn!("redis connect timed out"),
                },
                Err(e) => tracing::warn!(error = %e, "redis url invalid"),
            }
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(Unscheduled::NoConnection);
        };
        match tokio::time::timeout(
            TIMEOUT,
            retry_store::update(conn, &ctx.config.namespace, add, made),
        )
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Unscheduled::Failed(e)),
            Err(_) => {
                self.conn = None;
                Err(Unscheduled::TimedOut)
            }
        }
    }
}
