//! The API's one AMQP confirm channel, for manual retries. Connected on first use (the API
//! serves the log without RabbitMQ) and reconnected after any failure.

use std::time::Duration;

use hookrelay_shared::amqp::{self, Names};
use lapin::{Channel, Connection};
use tokio::sync::Mutex;

use crate::error::AppError;

/// How long a connect may take before the request gets a 503.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A lazily connected confirm channel.
pub struct Publisher {
    url: String,
    pub names: Names,
    current: Mutex<Option<(Connection, Channel)>>,
}

impl Publisher {
    pub fn new(url: String, names: Names) -> Self {
        Self {
            url,
            names,
            current: Mutex::new(None),
        }
    }

    /// A connected confirm channel; connects (and declares the topology) when there is none or
    /// the last one broke. 503 when RabbitMQ can't be reached.
    pub async fn channel(&self) -> Result<Channel, AppError> {
        let mut current = self.current.lock().await;
        if let Some((conn, ch)) = current.as_ref()
            && conn.status().connected()
            && ch.status().connected()
        {
            return Ok(ch.clone());
        }
        if let Some((conn, _)) = current.take() {
            amqp::close(&conn, 200, "reconnecting").await;
        }
        let connected = tokio::time::timeout(CONNECT_TIMEOUT, async {
            let conn = amqp::connect(&self.url, "api").await?;
            let ch = amqp::confirm_channel(&conn).await?;
            // Idempotent; makes sure the jobs queue exists so a job is never unroutable.
            amqp::declare_topology(&ch, &self.names).await?;
            Ok::<_, lapin::Error>((conn, ch))
        })
        .await;
        match connected {
            Ok(Ok((conn, ch))) => {
                *current = Some((conn, ch.clone()));
                Ok(ch)
            }
            Ok(Err(e)) => Err(unavailable(&e.to_string())),
            Err(_) => Err(unavailable("connect timed out")),
        }
    }

    /// Forgets the channel after a publish failed, so the next call reconnects.
    pub async fn reset(&self) {
        if let Some((conn, _)) = self.current.lock().await.take() {
            amqp::close(&conn, 200, "reset after error").await;
        }
    }

    /// Closes the connection (at shutdown).
    pub async fn close(&self) {
        self.reset().await;
    }
}

fn unavailable(why: &str) -> AppError {
    tracing::warn!(error = why, "RabbitMQ unavailable for manual retries");
    AppError::Unavailable(
        "RabbitMQ is unreachable, so retries can't be queued right now; try again shortly".into(),
    )
}
