//! A confirm-mode AMQP channel that reconnects on demand: after any publish error the
//! connection is dropped and the next round opens a new one (and re-declares the topology, so
//! the jobs queue exists even on a fresh broker).

use hookrelay_shared::amqp::{self, Names};
use lapin::{Channel, Connection};

/// The scheduler's publishing side.
pub struct Publisher {
    url: String,
    names: Names,
    conn: Option<(Connection, Channel)>,
}

impl Publisher {
    pub fn new(url: &str, names: Names) -> Self {
        Self {
            url: url.to_owned(),
            names,
            conn: None,
        }
    }

    pub fn names(&self) -> &Names {
        &self.names
    }

    /// The open channel, connecting first if needed.
    pub async fn channel(&mut self) -> lapin::Result<Channel> {
        if let Some((conn, ch)) = &self.conn
            && conn.status().connected()
            && ch.status().connected()
        {
            return Ok(ch.clone());
        }
        self.reset().await;
        let conn = amqp::connect(&self.url, "scheduler").await?;
        let ch = amqp::confirm_channel(&conn).await?;
        amqp::declare_topology(&ch, &self.names).await?;
        self.conn = Some((conn, ch.clone()));
        Ok(ch)
    }

    /// Drops the connection (after an error), so the next [`Publisher::channel`] reconnects.
    pub async fn reset(&mut self) {
        if let Some((conn, _)) = self.conn.take() {
            amqp::close(&conn, 200, "reconnecting").await;
        }
    }
}
