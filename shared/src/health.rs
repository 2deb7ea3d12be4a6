//! Readiness: can this process reach PostgreSQL, Redis and RabbitMQ right now? Each check has a
//! short timeout, so a probe answers quickly when a dependency hangs.

use std::time::Duration;

use serde::Serialize;

use crate::Context;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The state of each dependency.
#[derive(Clone, Debug, Serialize)]
pub struct Readiness {
    pub postgres: bool,
    pub redis: bool,
    pub rabbitmq: bool,
}

impl Readiness {
    pub fn ready(&self) -> bool {
        self.postgres && self.redis && self.rabbitmq
    }
}

async fn within<F: std::future::Future<Output = bool>>(f: F) -> bool {
    tokio::time::timeout(CHECK_TIMEOUT, f).await.unwrap_or(false)
}

/// Checks all three dependencies concurrently.
pub async fn check(ctx: &Context) -> Readiness {
    let pg = within(async { sqlx::query("SELECT 1").execute(&ctx.db).await.is_ok() });
    let redis = within(async {
        let Ok(client) = redis::Client::open(ctx.config.redis_url.as_str()) else {
            return false;
        };
        let Ok(mut con) = client.get_multiplexed_async_connection().await else {
            return false;
        };
        redis::cmd("PING").query_async::<String>(&mut con).await.is_ok()
    });
    let amqp = within(async {
        match crate::amqp::connect(&ctx.config.amqp_url, "readyz").await {
            Ok(conn) => {
                crate::amqp::close(&conn, 200, "probe").await;
                true
            }
            Err(_) => false,
        }
    });
    let (postgres, redis, rabbitmq) = tokio::join!(pg, redis, amqp);
    Readiness {
        postgres,
        redis,
        rabbitmq,
    }
}
