//! The per-webhook guard state that every dispatcher replica shares, in Redis: the circuit
//! breaker, the pause a `Retry-After` asks for, the rate limiter and the time since which
//! every attempt failed (auto-disable). One hash per webhook, [`key`]; all times are Unix
//! milliseconds of the Redis server's clock (`TIME`), so replicas' clocks don't matter.
//!
//! Fields: `state` (`closed`, `open`, `half_open`), `fails` (consecutive failures),
//! `cooldown` (ms, doubles at each failed probe), `open_until`, `probe_until` (the lease of the
//! one probe a half-open circuit lets through), `pause_until` (Retry-After), `tat` (the rate
//! limiter's theoretical arrival time, GCRA), `failing_since`, `last_error`.

use std::sync::LazyLock;

use redis::Script;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::redis_keys;

/// The hash of one webhook's guard state.
pub fn key(ns: &str, webhook_id: Uuid) -> String {
    redis_keys::key(ns, &format!("webhook:{webhook_id}"))
}

/// Decides whether one attempt may go now. `ARGV[1]`: rate limit (requests/s, 0 = none);
/// `ARGV[2]`: `1` when the attempt already holds a rate slot (it was deferred to it);
/// `ARGV[3]`: the probe lease (ms); `ARGV[4]`: the key's TTL (ms).
/// Returns `[decision, at, state, fails, now]`: decision `ok`, `probe` (the one attempt a
/// half-open circuit lets through; `reprobe` when an earlier probe's lease ran out), or a deferral reason (`retry_after`, `circuit`,
/// `rate_limit`) with `at` = when to come back. A rate deferral reserves that slot.
pub static ADMIT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local h = redis.call('HMGET', KEYS[1], 'state', 'open_until', 'pause_until', 'probe_until', 'tat', 'fails')
local state = h[1] or 'closed'
local open_until = tonumber(h[2]) or 0
local pause_until = tonumber(h[3]) or 0
local probe_until = tonumber(h[4]) or 0
local fails = tonumber(h[6]) or 0
if pause_until > now then
  return {'retry_after', pause_until, state, fails, now}
end
local probe = false
if state == 'open' then
  if open_until > now then
    return {'circuit', open_until, state, fails, now}
  end
  state = 'half_open'
  redis.call('HSET', KEYS[1], 'state', 'half_open', 'probe_until', now + tonumber(ARGV[3]))
  probe = 'probe'
elseif state == 'half_open' then
  if probe_until > now then
    return {'circuit', probe_until, state, fails, now}
  end
  redis.call('HSET', KEYS[1], 'probe_until', now + tonumber(ARGV[3]))
  probe = 'reprobe'
end
local rate = tonumber(ARGV[1])
if rate > 0 and ARGV[2] ~= '1' and not probe then
  local interval = 1000 / rate
  local tat = tonumber(h[5]) or 0
  if tat < now then tat = now end
  redis.call('HSET', KEYS[1], 'tat', tostring(tat + interval))
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  if tat > now then
    return {'rate_limit', math.ceil(tat), state, fails, now}
  end
end
if probe then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return {probe, 0, state, fails, now}
end
return {'ok', 0, state, fails, now}
",
    )
});

/// Records an attempt's outcome. `ARGV[1]`: `ok` (2xx), `fail` (timeout, connection error,
/// 5xx: counts toward opening), `soft` (any other answer: the endpoint is up, yet the attempt
/// failed); `ARGV[2]`: the error; `ARGV[3]`: failures that open; `ARGV[4]`/`ARGV[5]`: first
/// and longest cool-down (ms); `ARGV[6]`: a Retry-After pause (ms, 0 = none); `ARGV[7]`:
/// disable after (ms, 0 = never); `ARGV[8]`: TTL (ms); `ARGV[9]`: `1` for the probe.
/// Returns `[transition, state, fails, open_until, disable, now]`: transition `open`,
/// `closed` or empty; disable `1` when every attempt failed for the disable window.
pub static REPORT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local h = redis.call('HMGET', KEYS[1], 'state', 'fails', 'cooldown', 'failing_since', 'open_until')
local state = h[1] or 'closed'
local fails = tonumber(h[2]) or 0
local base = tonumber(ARGV[4])
local cooldown = tonumber(h[3]) or base
local since = tonumber(h[4])
local open_until = tonumber(h[5]) or 0
local kind = ARGV[1]
local probe = ARGV[9] == '1'
local to = ''
local pause = tonumber(ARGV[6])
if pause > 0 then
  redis.call('HSET', KEYS[1], 'pause_until', now + pause)
end
local function close()
  if state ~= 'closed' then to = 'closed' end
  state = 'closed'
  fails = 0
  open_until = 0
  redis.call('HSET', KEYS[1], 'state', 'closed', 'fails', 0, 'cooldown', base)
  redis.call('HDEL', KEYS[1], 'open_until', 'probe_until')
end
if kind == 'ok' then
  close()
  since = nil
  redis.call('HDEL', KEYS[1], 'failing_since')
else
  if not since then
    since = now
    redis.call('HSET', KEYS[1], 'failing_since', now)
  end
  redis.call('HSET', KEYS[1], 'last_error', ARGV[2])
  if kind == 'fail' then
    fails = fails + 1
    redis.call('HSET', KEYS[1], 'fails', fails)
    if state == 'half_open' and probe then
      cooldown = math.min(cooldown * 2, tonumber(ARGV[5]))
      open_until = now + cooldown
      state = 'open'
      to = 'open'
      redis.call('HSET', KEYS[1], 'state', 'open', 'open_until', open_until, 'cooldown', cooldown)
      redis.call('HDEL', KEYS[1], 'probe_until')
    elseif state == 'closed' and fails >= tonumber(ARGV[3]) then
      open_until = now + base
      state = 'open'
      to = 'open'
      redis.call('HSET', KEYS[1], 'state', 'open', 'open_until', open_until, 'cooldown', base)
    end
  elseif state == 'half_open' and probe then
    close()
  else
    fails = 0
    redis.call('HSET', KEYS[1], 'fails', 0)
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[8])
local disable = 0
local after = tonumber(ARGV[7])
if after > 0 and since and now - since >= after then disable = 1 end
return {to, state, fails, open_until, disable, now}
",
    )
});

/// A webhook's circuit as the API shows it (`health` on `GET /api/v1/webhooks/{id}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Health {
    /// `closed`, `open` or `half_open`.
    pub circuit: String,
    pub consecutive_failures: u32,
    #[serde(with = "time::serde::rfc3339::option")]
    pub open_until: Option<OffsetDateTime>,
    pub last_error: Option<String>,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            circuit: "closed".into(),
            consecutive_failures: 0,
            open_until: None,
            last_error: None,
        }
    }
}

fn from_ms(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms).checked_mul(1_000_000)?).ok()
}

/// The hash fields [`read`] takes, in order.
const HEALTH_FIELDS: [&str; 4] = ["state", "fails", "open_until", "last_error"];

type HealthFields = (Option<String>, Option<u32>, Option<i64>, Option<String>);

fn health_of((state, fails, open_until, last_error): HealthFields, now_ms: i64) -> Health {
    let circuit = match (state.as_deref(), open_until) {
        // The cool-down is over: the next attempt is the probe.
        (Some("open"), Some(until)) if until <= now_ms => "half_open".to_owned(),
        (Some(s @ ("open" | "half_open")), _) => s.to_owned(),
        _ => "closed".to_owned(),
    };
    Health {
        open_until: if circuit == "closed" {
            None
        } else {
            open_until.and_then(from_ms)
        },
        circuit,
        consecutive_failures: fails.unwrap_or(0),
        last_error,
    }
}

fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Reads a webhook's health; a webhook with no state (never failed, or expired) is closed.
pub async fn read<C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
    ns: &str,
    webhook_id: Uuid,
) -> redis::RedisResult<Health> {
    let fields: HealthFields = redis::cmd("HMGET")
        .arg(key(ns, webhook_id))
        .arg(&HEALTH_FIELDS[..])
        .query_async(conn)
        .await?;
    Ok(health_of(fields, now_ms()))
}

/// [`read`] for many webhooks in one round trip (a pipeline), in the order given.
pub async fn read_many<C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
    ns: &str,
    webhook_ids: &[Uuid],
) -> redis::RedisResult<Vec<Health>> {
    if webhook_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for id in webhook_ids {
        pipe.cmd("HMGET").arg(key(ns, *id)).arg(&HEALTH_FIELDS[..]);
    }
    let rows: Vec<HealthFields> = pipe.query_async(conn).await?;
    let now = now_ms();
    Ok(rows.into_iter().map(|f| health_of(f, now)).collect())
}

/// [`read`] on a connection of its own (the CLI): `None` when Redis does not answer within
/// `timeout`.
pub async fn read_once(
    redis_url: &str,
    ns: &str,
    webhook_id: Uuid,
    timeout: std::time::Duration,
) -> Option<Health> {
    let client = redis::Client::open(redis_url).ok()?;
    let read = async {
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        read(&mut conn, ns, webhook_id).await.ok()
    };
    tokio::time::timeout(timeout, read).await.ok().flatten()
}
