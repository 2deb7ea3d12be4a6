//! The delivery log (`GET /api/v1/deliveries`, one item per attempt) and one attempt in full
//! (`GET /api/v1/deliveries/{id}`).
//!
//! Every query is an index range scan: each filter and each sort key has an index ending in
//! `(attempted_at, id)`, the keyset cursor continues from `(sort value, attempted_at, id)`, and
//! `q` is resolved first against the small `webhooks` and `event_types` tables, then run as one
//! ordered branch per matching webhook or type (a UNION of index scans) instead of an OR that
//! would have to sort every match.
//!
//! `params` parses and validates the request (its parsers are shared with bulk retry and the
//! activity log), `sql` builds the query, `log` runs it in newest-first windows, `rows` maps
//! rows to items, `detail` is the one-attempt route.

pub mod detail;
pub mod log;
pub mod params;
pub mod rows;
pub mod sql;

pub use log::fetch_page;
pub use params::{
    Filter, ListParams, LogQuery, MAX_Q_LEN, check_range, parse_category, parse_limit, parse_status,
    parse_time, parse_uuid, utc_in_range,
};
pub use sql::{QMatch, build_query, push_filter, resolve_q};
