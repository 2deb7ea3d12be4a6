//! What every handler shares: the component context, the lazily connected AMQP publisher and
//! the tracker of background tasks (so shutdown can wait for them) and the bulk-retry worker's
//! wake-up.

use std::{str::FromStr, sync::Arc, time::Duration};

use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};

use hookrelay_shared::{Context, amqp::Names, health::Readiness};
use time::OffsetDateTime;
use tokio::sync::{Mutex, Notify, Semaphore};
use tokio_util::task::TaskTracker;

use crate::{health::HealthReader, publisher::Publisher};

/// Shared state of the router (cheap to clone).
#[derive(Clone)]
pub struct AppState {
    pub ctx: Context,
    /// The pool the delivery-log queries run on (see [`log_pool`]).
    pub log_db: PgPool,
    pub publisher: Arc<Publisher>,
    /// Background work started by requests (bulk retries).
    pub tasks: TaskTracker,
    /// A request taking longer than this gets a 503 problem.
    pub request_timeout: Duration,
    /// Reads webhooks' circuit health from Redis.
    pub health: Arc<HealthReader>,
    /// Wakes this replica's bulk-retry worker when a job is made here.
    pub bulk_wakeup: Arc<Notify>,
    /// Failed attempts read per bulk-retry chunk ([`crate::bulk::CHUNK`]; smaller in tests).
    pub bulk_chunk: i64,
    /// The last readiness check and when it was made (`/readyz` answers from it for
    /// [`READY_CACHE`]).
    pub readiness: Arc<Mutex<Option<(std::time::Instant, OffsetDateTime, Readiness)>>>,
    /// Requests in flight at once; beyond, a 503 problem at once ([`MAX_IN_FLIGHT`]).
    pub in_flight: Arc<Semaphore>,
    /// A connection that has not sent a whole request head within this is closed.
    pub header_read_timeout: Duration,
}

/// How long a readiness answer is reused: a probe every second does not open an AMQP and a
/// Redis connection every second.
pub const READY_CACHE: Duration = Duration::from_secs(2);
/// Default limit of requests in flight per replica (load shedding).
pub const MAX_IN_FLIGHT: usize = 512;
/// Default header-read timeout (slowloris).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

impl AppState {
    /// State for `ctx` with the default request timeout (30 s).
    pub fn new(ctx: Context) -> Self {
        let names = Names::new(&ctx.config.namespace);
        let publisher = Arc::new(Publisher::new(ctx.config.amqp_url.clone(), names));
        let log_db = log_pool(&ctx.config.database_url).unwrap_or_else(|| ctx.db.clone());
        let health = Arc::new(HealthReader::new(&ctx.config.redis_url, &ctx.config.namespace));
        Self {
            health,
            ctx,
            log_db,
            publisher,
            tasks: TaskTracker::new(),
            request_timeout: Duration::from_secs(30),
            bulk_wakeup: Arc::new(Notify::new()),
            bulk_chunk: crate::bulk::CHUNK,
            readiness: Arc::new(Mutex::new(None)),
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            header_read_timeout: HEADER_READ_TIMEOUT,
        }
    }
}

/// A lazily connected pool whose sessions use generic plans (`plan_cache_mode =
/// force_generic_plan`). Planning a log query over ~40 daily partitions costs far more than
/// running it (20 ms against under 1 ms in the benchmark); a prepared statement's generic plan
/// is made once per connection, still prunes partitions at executor start-up, and the page
/// LIMIT is a literal in the SQL so the plan knows how few rows are wanted. A separate pool so
/// the setting never reaches the other components' queries. `None` for an unparsable URL.
pub fn log_pool(database_url: &str) -> Option<PgPool> {
    let options = PgConnectOptions::from_str(database_url)
        .ok()?
        .application_name("hookrelay-api-log")
        .options([("plan_cache_mode", "force_generic_plan")]);
    Some(
        PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(options),
    )
}
