//! What every handler shares: the component context, the lazily connected AMQP publisher and
//! the tracker of background bulk-retry tasks (so shutdown can wait for them).

use std::{sync::Arc, time::Duration};

use hookrelay_shared::{Context, amqp::Names};
use tokio_util::task::TaskTracker;

use crate::publisher::Publisher;

/// Shared state of the router (cheap to clone).
#[derive(Clone)]
pub struct AppState {
    pub ctx: Context,
    pub publisher: Arc<Publisher>,
    /// Background work started by requests (bulk retries).
    pub tasks: TaskTracker,
    /// A request taking longer than this gets a 503 problem.
    pub request_timeout: Duration,
}

impl AppState {
    /// State for `ctx` with the default request timeout (30 s).
    pub fn new(ctx: Context) -> Self {
        let names = Names::new(&ctx.config.namespace);
        let publisher = Arc::new(Publisher::new(ctx.config.amqp_url.clone(), names));
        Self {
            ctx,
            publisher,
            tasks: TaskTracker::new(),
            request_timeout: Duration::from_secs(30),
        }
    }
}
