//! The Lua scripts that make claiming, acknowledging and reconciling atomic in Redis.
//!
//! Keys: `KEYS[1]` is the retry set `{ns}:retries` (score = due, Unix ms), `KEYS[2]` the fired
//! set `{ns}:fired` (member → the time its job was confirmed, Unix ms). Both share the hash tag
//! `{ns}`, so the scripts stay valid on Redis Cluster.

use std::sync::LazyLock;

use redis::Script;

/// Claims up to `ARGV[3]` members due at `ARGV[1]` (now) by re-scoring them to `ARGV[2]` (the
/// lease end), so no other replica takes them until the lease runs out. Returns the claimed
/// members with their scores before the claim (their due time), flat: `[m1, s1, m2, s2, ...]`.
pub static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[3]))
for i = 1, #due, 2 do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[2], due[i])
end
return due
",
    )
});

/// After the broker confirmed their jobs: removes each member of `ARGV[4..]` whose score is
/// still the lease `ARGV[1]` (if the lease ran out and another replica re-claimed it, that
/// replica owns it now), and notes it in the fired set at `ARGV[2]` (now). Fired entries older
/// than `ARGV[3]` are trimmed. Returns how many members were removed.
pub static ACK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local lease = tonumber(ARGV[1])
local removed = 0
for i = 4, #ARGV do
  local s = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if s and tonumber(s) == lease then
    redis.call('ZREM', KEYS[1], ARGV[i])
    redis.call('ZADD', KEYS[2], ARGV[2], ARGV[i])
    removed = removed + 1
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[3])
return removed
",
    )
});

/// Reconcile: adds the `(score, member)` pairs of `ARGV[2..]` that are not in the set yet
/// (`ZADD NX`, so a claimed member keeps its lease), except a member whose job was already
/// confirmed (in the fired set, newer than `ARGV[1]`) while its due time is not later than
/// that confirm: PostgreSQL simply has not seen the dispatcher take that job yet. Returns how
/// many members were added.
pub static RECONCILE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cutoff = tonumber(ARGV[1])
local added = 0
for i = 2, #ARGV, 2 do
  local score = tonumber(ARGV[i])
  local fired = redis.call('ZSCORE', KEYS[2], ARGV[i + 1])
  local skip = false
  if fired then
    local f = tonumber(fired)
    skip = f >= cutoff and score <= f
  end
  if not skip then
    added = added + redis.call('ZADD', KEYS[1], 'NX', score, ARGV[i + 1])
  end
end
return added
",
    )
});
