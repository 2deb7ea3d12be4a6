//! Redis key names. Every key of a namespace shares the hash tag `{ns}` so that, on Redis
//! Cluster, one namespace's keys live in one slot and Lua scripts may touch them together.

/// The sorted set of pending retries: member `"{delivery_id}|{event_received_at unix ms}|{attempt}"`,
/// score = due time in Unix milliseconds.
pub fn retries(ns: &str) -> String {
    format!("{{{ns}}}:retries")
}

/// Any other key of the namespace, e.g. `key(ns, "reconcile-lock")`.
pub fn key(ns: &str, name: &str) -> String {
    format!("{{{ns}}}:{name}")
}
