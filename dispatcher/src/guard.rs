//! The dispatcher's side of the shared per-webhook guard ([`hookrelay_shared::circuit`]): the
//! admission check (circuit, Retry-After pause, rate limit) and the outcome report, each one
//! Redis round trip. Redis being down never stops delivery: admission then lets attempts
//! through (the per-dispatcher in-flight cap still holds) and reports are skipped.

use std::time::{Duration, Instant};

use hookrelay_shared::{Context, activity, circuit};
use redis::aio::ConnectionManager;
use tokio::sync::Mutex;
use uuid::Uuid;

/// How long a half-open circuit's probe may take before another replica may probe.
pub fn probe_lease(ctx: &Context) -> Duration {
    ctx.config
        .request_timeout
        .0
        .saturating_add(Duration::from_secs(5))
}

/// How long a webhook's state is kept in Redis after its last change.
fn state_ttl(ctx: &Context) -> Duration {
    let c = &ctx.config;
    let longest = c
        .disable_after
        .0
        .unwrap_or(Duration::ZERO)
        .max(c.circuit_max_cooldown.0)
        .max(Duration::from_secs(86_400));
    longest.saturating_mul(2)
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What admission said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// `first`: this probe moved the circuit from open to half-open.
    Go {
        probe: bool,
        first: bool,
    },
    Defer {
        reason: &'static str,
        until_ms: i64,
    },
}

/// The circuit as the last Redis answer showed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Circuit {
    #[default]
    Closed,
    Open,
    HalfOpen,
}

impl Circuit {
    fn parse(s: &str) -> Self {
        match s {
            "open" => Self::Open,
            "half_open" => Self::HalfOpen,
            _ => Self::Closed,
        }
    }
}

/// A replica's view of one webhook's shared state.
#[derive(Clone, Copy, Debug, Default)]
pub struct View {
    pub circuit: Circuit,
    pub fails: u32,
    pub open_until_ms: i64,
    pub pause_until_ms: i64,
}

/// How an attempt ended, for the breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// Timeout, connection error or 5xx.
    Fail,
    /// Any other answer that is not a success.
    Soft,
}

impl Verdict {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Fail => "fail",
            Self::Soft => "soft",
        }
    }
}

/// What a report changed.
#[derive(Clone, Debug, Default)]
pub struct Reported {
    pub transition: Option<&'static str>,
    pub view: View,
    pub disable: bool,
}

/// The Redis connection of the guard, (re)connected lazily.
pub struct Guard {
    ctx: Context,
    conn: Mutex<Option<ConnectionManager>>,
    last_try: std::sync::Mutex<Option<Instant>>,
}

impl Guard {
    pub fn new(ctx: Context) -> Self {
        Self {
            ctx,
            conn: Mutex::new(None),
            last_try: std::sync::Mutex::new(None),
        }
    }

    async fn connection(&self) -> Option<ConnectionManager> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Some(c.clone());
        }
        // At most one connection attempt a second while Redis is down.
        if let Ok(mut last) = self.last_try.lock() {
            if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
                return None;
            }
            *last = Some(Instant::now());
        }
        let client = redis::Client::open(self.ctx.config.redis_url.as_str()).ok()?;
        match tokio::time::timeout(Duration::from_secs(2), client.get_connection_manager()).await {
            Ok(Ok(m)) => {
                *slot = Some(m.clone());
                Some(m)
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "redis connect failed; webhook limits and circuits not shared meanwhile");
                None
            }
            Err(_) => {
                tracing::warn!("redis connect timed out; webhook limits and circuits not shared meanwhile");
                None
            }
        }
    }

    async fn forget(&self) {
        *self.conn.lock().await = None;
    }

    /// Asks whether an attempt to `webhook_id` may go now. `None` when Redis can't answer (the
    /// attempt then goes: failing open keeps deliveries moving during a Redis outage).
    pub async fn admit(
        &self,
        webhook_id: Uuid,
        rate_limit: Option<f64>,
        slot_reserved: bool,
    ) -> Option<(Admission, View)> {
        let mut conn = self.connection().await?;
        let started = Instant::now();
        let mut inv = circuit::ADMIT.key(circuit::key(&self.ctx.config.namespace, webhook_id));
        inv.arg(rate_limit.unwrap_or(0.0))
            .arg(if slot_reserved { "1" } else { "0" })
            .arg(ms(probe_lease(&self.ctx)))
            .arg(ms(state_ttl(&self.ctx)));
        let call = inv.invoke_async::<(String, i64, String, u32, i64)>(&mut conn);
        let reply = tokio::time::timeout(Duration::from_secs(2), call).await;
        self.observe("admit", started);
        let (decision, at, state, fails, _now) = match reply {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "webhook admission check failed; sending");
                return None;
            }
            Err(_) => {
                self.forget().await;
                tracing::warn!("webhook admission check timed out; sending");
                return None;
            }
        };
        let circuit = Circuit::parse(&state);
        let view = View {
            circuit,
            fails,
            open_until_ms: if circuit == Circuit::Open { at } else { 0 },
            pause_until_ms: if decision == "retry_after" { at } else { 0 },
        };
        let admission = match decision.as_str() {
            "ok" => Admission::Go {
                probe: false,
                first: false,
            },
            "probe" => Admission::Go {
                probe: true,
                first: true,
            },
            "reprobe" => Admission::Go {
                probe: true,
                first: false,
            },
            "retry_after" => Admission::Defer {
                reason: "retry_after",
                until_ms: at,
            },
            "circuit" => Admission::Defer {
                reason: "circuit",
                until_ms: at,
            },
            "rate_limit" => Admission::Defer {
                reason: "rate_limit",
                until_ms: at,
            },
            _ => Admission::Go {
                probe: false,
                first: false,
            },
        };
        Some((admission, view))
    }

    /// Records an outcome; `None` when Redis can't take it.
    pub async fn report(
        &self,
        webhook_id: Uuid,
        verdict: Verdict,
        error: &str,
        pause: Option<Duration>,
        probe: bool,
    ) -> Option<Reported> {
        let mut conn = self.connection().await?;
        let c = &self.ctx.config;
        let started = Instant::now();
        let mut inv = circuit::REPORT.key(circuit::key(&c.namespace, webhook_id));
        inv.arg(verdict.as_str())
            .arg(error)
            .arg(c.circuit_failures)
            .arg(ms(c.circuit_cooldown.0))
            .arg(ms(c.circuit_max_cooldown.0))
            .arg(pause.map(ms).unwrap_or(0))
            .arg(c.disable_after.0.map(ms).unwrap_or(0))
            .arg(ms(state_ttl(&self.ctx)))
            .arg(if probe { "1" } else { "0" });
        let call = inv.invoke_async::<(String, String, u32, i64, i64, i64)>(&mut conn);
        let reply = tokio::time::timeout(Duration::from_secs(2), call).await;
        self.observe("report", started);
        let (to, state, fails, open_until, disable, now) = match reply {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "recording a webhook outcome in redis failed");
                return None;
            }
            Err(_) => {
                self.forget().await;
                tracing::warn!("recording a webhook outcome in redis timed out");
                return None;
            }
        };
        let pause_until_ms = pause.map_or(0, |p| {
            now.saturating_add(i64::try_from(ms(p)).unwrap_or(i64::MAX))
        });
        let transition = match to.as_str() {
            "open" => Some("open"),
            "closed" => Some("closed"),
            _ => None,
        };
        if let Some(to) = transition {
            self.record_transition(webhook_id, to, fails, error);
        }
        Some(Reported {
            transition,
            view: View {
                circuit: Circuit::parse(&state),
                fails,
                open_until_ms: open_until,
                pause_until_ms,
            },
            disable: disable == 1,
        })
    }

    /// Writes a circuit transition to the activity log, off the attempt's path (only the
    /// replica whose report made the transition writes it).
    fn record_transition(&self, webhook_id: Uuid, to: &'static str, fails: u32, error: &str) {
        let db = self.ctx.db.clone();
        let (kind, details) = match to {
            "open" => (
                activity::kind::CIRCUIT_OPENED,
                serde_json::json!({"consecutive_failures": fails, "last_error": error.chars().take(200).collect::<String>()}),
            ),
            _ => (activity::kind::CIRCUIT_CLOSED, serde_json::json!({})),
        };
        tokio::spawn(async move {
            activity::record_logged(&db, &activity::Actor::system(), kind, Some(webhook_id), details).await;
        });
    }

    /// Forgets a webhook's state (it was disabled: re-enabled, it starts afresh).
    pub async fn clear(&self, webhook_id: Uuid) {
        if let Some(mut conn) = self.connection().await {
            let key = circuit::key(&self.ctx.config.namespace, webhook_id);
            let mut cmd = redis::cmd("DEL");
            cmd.arg(key);
            let call = cmd.query_async::<()>(&mut conn);
            if !matches!(
                tokio::time::timeout(Duration::from_secs(2), call).await,
                Ok(Ok(()))
            ) {
                tracing::warn!(%webhook_id, "clearing the webhook's circuit state in redis failed");
            }
        }
    }

    /// Reads the shared state without changing it (a replica refreshing its view).
    pub async fn view(&self, webhook_id: Uuid) -> Option<View> {
        let mut conn = self.connection().await?;
        let started = Instant::now();
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(circuit::key(&self.ctx.config.namespace, webhook_id))
            .arg("state")
            .arg("fails")
            .arg("open_until")
            .arg("pause_until");
        let call = cmd.query_async::<(Option<String>, Option<u32>, Option<i64>, Option<i64>)>(&mut conn);
        let reply = tokio::time::timeout(Duration::from_secs(2), call).await;
        self.observe("view", started);
        match reply {
            Ok(Ok((state, fails, open_until, pause_until))) => Some(View {
                circuit: state.as_deref().map(Circuit::parse).unwrap_or_default(),
                fails: fails.unwrap_or(0),
                open_until_ms: open_until.unwrap_or(0),
                pause_until_ms: pause_until.unwrap_or(0),
            }),
            Ok(Err(_)) => None,
            Err(_) => {
                self.forget().await;
                None
            }
        }
    }

    fn observe(&self, op: &'static str, started: Instant) {
        let name = match op {
            "admit" => "webhook_admit",
            "report" => "webhook_report",
            _ => "webhook_view",
        };
        self.ctx
            .metrics
            .redis_operation
            .get_or_create(&[("op", name)])
            .observe(started.elapsed().as_secs_f64());
    }
}
