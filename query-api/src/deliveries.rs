//! The delivery log (`GET /api/v1/deliveries`, one item per attempt) and one attempt in full
//! (`GET /api/v1/deliveries/{id}`).
//!
//! Every query is an index range scan: each filter and each sort key has an index ending in
//! `(attempted_at, id)`, the keyset cursor continues from `(sort value, attempted_at, id)`, and
//! `q` is resolved first against the small `webhooks` and `event_types` tables, then run as one
//! ordered branch per matching webhook or type (a UNION of index scans) instead of an OR that
//! would have to sort every match.

use axum::{Json, extract::State};
use hookrelay_shared::event::{is_valid_type, rfc3339};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sqlx::{Postgres, QueryBuilder};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    auth::{Admin, Auth},
    cursor::{Cursor, SortKey, SortValue},
    error::{AppError, AppResult, Problem},
    extract::{ApiQuery, IdPath, truncate},
    problems::{BadId, BadQuery, NeedsAdmin},
    state::AppState,
};

/// Default and largest page size.
pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;
/// Above this many matching webhooks + types, `q` runs as one `= ANY` scan instead of branches.
const MAX_Q_BRANCHES: usize = 32;
pub const MAX_Q_LEN: usize = 200;

/// Query parameters of the log. All strings here so that each error names its parameter.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Case-insensitive substring of the webhook's name or URL, or of the event type.
    pub q: Option<String>,
    /// Event category: the first segment of the type (`license` for `license.*`).
    pub category: Option<String>,
    /// Exact event type.
    pub event_type: Option<String>,
    /// `success` or `failed`.
    #[param(value_type = Option<StatusParam>, inline)]
    pub status: Option<String>,
    #[param(value_type = Option<Uuid>)]
    pub webhook_id: Option<String>,
    /// Exact HTTP status of the response (100-599).
    #[param(value_type = Option<u16>, minimum = 100, maximum = 599)]
    pub response_code: Option<String>,
    /// RFC 3339; attempts at or after this time.
    #[param(value_type = Option<String>, format = DateTime)]
    pub since: Option<String>,
    /// RFC 3339; attempts before this time.
    #[param(value_type = Option<String>, format = DateTime)]
    pub until: Option<String>,
    /// `attempted_at` (default), `status` or `response_code` (no response counts as 0).
    #[param(value_type = Option<SortParam>, inline)]
    pub sort: Option<String>,
    /// `desc` (default) or `asc`.
    #[param(value_type = Option<OrderParam>, inline)]
    pub order: Option<String>,
    /// 1..200, default 50.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // documentation only
pub enum StatusParam {
    Success,
    Failed,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // documentation only
pub enum SortParam {
    AttemptedAt,
    Status,
    ResponseCode,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // documentation only
pub enum OrderParam {
    Desc,
    Asc,
}

/// The filters shared by the log and bulk retry, parsed and validated.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub category: Option<String>,
    pub event_type: Option<String>,
    pub status: Option<&'static str>,
    pub webhook_id: Option<Uuid>,
    pub response_code: Option<i32>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
}

/// `q` resolved to the webhooks and event types it matches.
#[derive(Debug, Default, Clone)]
pub struct QMatch {
    pub webhooks: Vec<Uuid>,
    pub types: Vec<String>,
    /// q matches every webhook, hence every attempt.
    pub everything: bool,
}

/// Lower time bounds tried in turn for a newest-first page, back from the newest attempt the
/// page can hold (its cursor, `until`, or now). A bound lets PostgreSQL prune the older daily
/// partitions when the executor starts, instead of opening an index scan in every one of them
/// (in every `q` branch: 5 matching types x 40 partitions was 200 index scans for 51 rows). A
/// page the window does not fill is asked again with the next, wider one, and at last without.
pub const WINDOWS: [time::Duration; 3] = [
    time::Duration::hours(1),
    time::Duration::days(1),
    time::Duration::days(7),
];

/// A parsed log request.
#[derive(Debug, Clone)]
pub struct LogQuery {
    pub filter: Filter,
    pub q: Option<String>,
    pub sort: SortKey,
    pub descending: bool,
    pub limit: i64,
    pub cursor: Option<Cursor>,
}

fn nonempty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

pub fn parse_status(v: Option<&str>) -> Result<Option<&'static str>, AppError> {
    match v {
        None => Ok(None),
        Some("success") => Ok(Some("success")),
        Some("failed") => Ok(Some("failed")),
        Some(other) => Err(AppError::bad(format!(
            "status: `{}` is not one of success, failed",
            truncate(other, 40)
        ))),
    }
}

/// Years a client-given time may fall in, once converted to UTC. Inside both the `time`
/// crate's range (±9999) and PostgreSQL's, with room for the log's window arithmetic, so no
/// conversion, subtraction or SQL encoding of an accepted time can overflow (sqlx's encoder
/// converts to UTC and panics when that leaves the range).
pub const YEARS: std::ops::RangeInclusive<i32> = 1..=9999;

/// `t` in UTC when that is inside [`YEARS`], else `None`.
pub fn utc_in_range(t: OffsetDateTime) -> Option<OffsetDateTime> {
    t.checked_to_offset(time::UtcOffset::UTC)
        .filter(|u| YEARS.contains(&u.year()))
}

/// Parses an RFC 3339 parameter, converted to UTC; out of [`YEARS`] is a 400 naming it.
pub fn parse_time(name: &str, v: Option<&str>) -> Result<Option<OffsetDateTime>, AppError> {
    v.map(|s| {
        let t = OffsetDateTime::parse(s, &Rfc3339).map_err(|_| {
            AppError::bad(format!(
                "{name}: `{}` is not an RFC 3339 time such as 2026-11-27T10:00:00Z",
                truncate(s, 60)
            ))
        })?;
        utc_in_range(t).ok_or_else(|| {
            AppError::bad(format!(
                "{name}: `{}` is out of range (years {}-{} in UTC)",
                truncate(s, 60),
                YEARS.start(),
                YEARS.end()
            ))
        })
    })
    .transpose()
}

pub fn parse_category(v: Option<&str>) -> Result<Option<String>, AppError> {
    match v {
        Some(c)
            if c.len() > 128
                || !c
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-') =>
        {
            Err(AppError::bad(format!(
                "category: `{}` is not a category (lowercase letters, digits, _ and -)",
                truncate(c, 40)
            )))
        }
        other => Ok(other.map(str::to_owned)),
    }
}

pub fn check_range(since: Option<OffsetDateTime>, until: Option<OffsetDateTime>) -> Result<(), AppError> {
    match (since, until) {
        (Some(s), Some(u)) if s >= u => Err(AppError::bad("until: must be later than since")),
        _ => Ok(()),
    }
}

impl LogQuery {
    pub fn parse(p: &ListParams) -> Result<Self, AppError> {
        let event_type = match nonempty(&p.event_type) {
            Some(t) if !is_valid_type(t) => {
                return Err(AppError::bad(format!(
                    "event_type: `{}` is not an event type (e.g. license.assigned)",
                    truncate(t, 40)
                )));
            }
            other => other.map(str::to_owned),
        };
        let webhook_id = nonempty(&p.webhook_id)
            .map(|s| {
                Uuid::parse_str(s)
                    .map_err(|_| AppError::bad(format!("webhook_id: `{}` is not a UUID", truncate(s, 40))))
            })
            .transpose()?;
        let response_code = nonempty(&p.response_code)
            .map(|s| match s.parse::<i32>() {
                Ok(c) if (100..=599).contains(&c) => Ok(c),
                _ => Err(AppError::bad(format!(
                    "response_code: `{}` is not an HTTP status (100-599)",
                    truncate(s, 20)
                ))),
            })
            .transpose()?;
        let since = parse_time("since", nonempty(&p.since))?;
        let until = parse_time("until", nonempty(&p.until))?;
        check_range(since, until)?;
        let sort = nonempty(&p.sort)
            .map(SortKey::parse)
            .transpose()?
            .unwrap_or(SortKey::AttemptedAt);
        let descending = match nonempty(&p.order) {
            None | Some("desc") => true,
            Some("asc") => false,
            Some(o) => {
                return Err(AppError::bad(format!(
                    "order: `{}` is not desc or asc",
                    truncate(o, 20)
                )));
            }
        };
        let limit = match nonempty(&p.limit) {
            None => DEFAULT_LIMIT,
            Some(s) => match s.parse::<i64>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(AppError::bad(format!(
                        "limit: `{}` is not a number from 1 to {MAX_LIMIT}",
                        truncate(s, 20)
                    )));
                }
            },
        };
        let q = match nonempty(&p.q) {
            Some(q) if q.chars().count() > MAX_Q_LEN => {
                return Err(AppError::bad(format!("q: longer than {MAX_Q_LEN} characters")));
            }
            Some(q) if q.chars().any(char::is_control) => {
                return Err(AppError::bad("q: contains a control character"));
            }
            other => other.map(str::to_owned),
        };
        let cursor = nonempty(&p.cursor)
            .map(|c| Cursor::decode(c, sort, descending))
            .transpose()?;
        Ok(Self {
            filter: Filter {
                category: parse_category(nonempty(&p.category))?,
                event_type,
                status: parse_status(nonempty(&p.status))?,
                webhook_id,
                response_code,
                since,
                until,
            },
            q,
            sort,
            descending,
            limit,
            cursor,
        })
    }
}

/// `%`, `_` and `\` match literally in the ILIKE pattern built from `q`.
pub fn like_pattern(q: &str) -> String {
    let mut out = String::with_capacity(q.len() + 2);
    out.push('%');
    for c in q.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// The webhooks (deleted ones too: their attempts are still in the log) and event types `q`
/// matches. Both tables are small.
pub async fn resolve_q(db: &sqlx::PgPool, q: &str) -> sqlx::Result<QMatch> {
    let pattern = like_pattern(q);
    let webhooks: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM webhooks WHERE name ILIKE $1 OR url ILIKE $1 ORDER BY id")
            .bind(&pattern)
            .fetch_all(db)
            .await?;
    let types: Vec<String> = sqlx::query_scalar(
        "SELECT event_type FROM event_types WHERE event_type ILIKE $1 ORDER BY event_type",
    )
    .bind(&pattern)
    .fetch_all(db)
    .await?;
    // Every attempt belongs to a row of `webhooks` (deleted ones are kept), so a q matching
    // every webhook matches every attempt: no filter at all, and the plain index scans apply.
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM webhooks")
        .fetch_one(db)
        .await?;
    let everything = total > 0 && webhooks.len() as i64 == total;
    Ok(QMatch {
        webhooks,
        types,
        everything,
    })
}

/// Appends `AND ...` for each filter (the attempts table is aliased `a`).
pub fn push_filter(qb: &mut QueryBuilder<Postgres>, f: &Filter) {
    if let Some(v) = &f.category {
        qb.push(" AND a.category = ").push_bind(v.clone());
    }
    if let Some(v) = &f.event_type {
        qb.push(" AND a.event_type = ").push_bind(v.clone());
    }
    if let Some(v) = f.status {
        qb.push(" AND a.status = ").push_bind(v);
    }
    if let Some(v) = f.webhook_id {
        qb.push(" AND a.webhook_id = ").push_bind(v);
    }
    if let Some(v) = f.response_code {
        // The form of attempts_code_sort_idx (migration 0300); equal for real statuses.
        qb.push(" AND COALESCE(a.response_code, 0) = ").push_bind(v);
    }
    if let Some(v) = f.since {
        qb.push(" AND a.attempted_at >= ").push_bind(v);
    }
    if let Some(v) = f.until {
        qb.push(" AND a.attempted_at < ").push_bind(v);
    }
}

/// One extra condition of a `q` branch.
enum Branch<'a> {
    All,
    Webhook(Uuid),
    Type(&'a str),
    Any(&'a QMatch),
}

/// The sort key columns, prefixed with `p` (`a` inside a branch, `x` outside).
fn key_columns(sort: SortKey, p: &str) -> Vec<String> {
    let mut cols = match sort {
        SortKey::AttemptedAt => vec![],
        SortKey::Status => vec![format!("{p}.status")],
        // Matches the expression index attempts_code_sort_idx (migration 0300).
        SortKey::ResponseCode => vec![format!("COALESCE({p}.response_code, 0)")],
    };
    cols.push(format!("{p}.attempted_at"));
    cols.push(format!("{p}.id"));
    cols
}

fn order_by(sort: SortKey, p: &str, descending: bool) -> String {
    let dir = if descending { " DESC" } else { " ASC" };
    key_columns(sort, p)
        .iter()
        .map(|c| format!("{c}{dir}"))
        .collect::<Vec<_>>()
        .join(", ")
}

const ITEM_COLUMNS: &str = "a.id, a.delivery_id, a.event_id, a.event_type, a.webhook_id, a.status, \
     a.response_code, a.error, a.attempt, a.trigger, a.attempted_at, a.duration_ms";

fn push_branch(qb: &mut QueryBuilder<Postgres>, lq: &LogQuery, branch: &Branch<'_>, fetch: i64) {
    qb.push("(SELECT ")
        .push(ITEM_COLUMNS)
        .push(" FROM attempts a WHERE TRUE");
    push_filter(qb, &lq.filter);
    match branch {
        Branch::All => {}
        Branch::Webhook(id) => {
            qb.push(" AND a.webhook_id = ").push_bind(*id);
        }
        Branch::Type(t) => {
            qb.push(" AND a.event_type = ").push_bind((*t).to_owned());
        }
        Branch::Any(m) => {
            qb.push(" AND (a.webhook_id = ANY(")
                .push_bind(m.webhooks.clone())
                .push(") OR a.event_type = ANY(")
                .push_bind(m.types.clone())
                .push("))");
        }
    }
    if let Some(c) = &lq.cursor {
        let cmp = if lq.descending { " < " } else { " > " };
        qb.push(" AND (")
            .push(key_columns(lq.sort, "a").join(", "))
            .push(")")
            .push(cmp)
            .push("(");
        match &c.value {
            SortValue::None => {}
            SortValue::Status(s) => {
                qb.push_bind(*s).push(", ");
            }
            SortValue::Code(code) => {
                qb.push_bind(*code).push(", ");
            }
        }
        qb.push_bind(c.attempted_at).push(", ").push_bind(c.id).push(")");
    }
    qb.push(" ORDER BY ")
        .push(order_by(lq.sort, "a", lq.descending))
        .push(" LIMIT ")
        // A literal (validated 2..=201), so even a generic plan knows how few rows are wanted.
        .push(fetch)
        .push(")");
}

/// Builds the page query (`limit + 1` rows, to know whether there is a next page), after
/// `prefix` (empty, or `EXPLAIN ...` for the benchmark).
pub fn build_query(prefix: &str, lq: &LogQuery, q: Option<&QMatch>) -> QueryBuilder<Postgres> {
    let fetch = lq.limit + 1;
    let mut qb = QueryBuilder::new(format!(
        "{prefix}SELECT x.*, w.name AS webhook_name, w.url AS webhook_url FROM ("
    ));
    let branches: Vec<Branch<'_>> = match q {
        None => vec![Branch::All],
        Some(m) if m.everything => vec![Branch::All],
        Some(m) if m.webhooks.len() + m.types.len() > MAX_Q_BRANCHES => vec![Branch::Any(m)],
        Some(m) => m
            .webhooks
            .iter()
            .map(|id| Branch::Webhook(*id))
            .chain(m.types.iter().map(|t| Branch::Type(t)))
            .collect(),
    };
    for (i, b) in branches.iter().enumerate() {
        if i > 0 {
            // UNION (not ALL): an attempt matching both a webhook and a type appears once.
            qb.push(" UNION ");
        }
        push_branch(&mut qb, lq, b, fetch);
    }
    qb.push(") x LEFT JOIN webhooks w ON w.id = x.webhook_id ORDER BY ")
        .push(order_by(lq.sort, "x", lq.descending))
        .push(" LIMIT ")
        .push(fetch);
    qb
}

#[derive(sqlx::FromRow)]
struct ItemRow {
    id: Uuid,
    delivery_id: Uuid,
    event_id: String,
    event_type: String,
    webhook_id: Uuid,
    webhook_name: Option<String>,
    webhook_url: Option<String>,
    status: String,
    response_code: Option<i32>,
    error: Option<String>,
    attempt: i32,
    trigger: String,
    attempted_at: OffsetDateTime,
    duration_ms: i32,
}

/// The webhook an attempt went to.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookRef {
    pub id: Uuid,
    pub name: String,
    pub url: String,
}

/// One attempt, as listed in the log.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeliveryItem {
    /// The attempt id.
    pub id: Uuid,
    pub delivery_id: Uuid,
    pub event_id: String,
    pub event_type: String,
    pub webhook: WebhookRef,
    /// `success` or `failed`.
    pub status: String,
    pub response_code: Option<i32>,
    pub error: Option<String>,
    /// 1 for the first attempt, then 2, 3...
    pub attempt: i32,
    /// `initial`, `automatic` or `manual`.
    pub trigger: String,
    /// RFC 3339 with milliseconds, UTC.
    #[schema(example = "2026-11-27T10:00:00.123Z")]
    pub attempted_at: String,
    pub duration_ms: i32,
}

/// A page of the log.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeliveryPage {
    pub items: Vec<DeliveryItem>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

impl From<ItemRow> for DeliveryItem {
    fn from(r: ItemRow) -> Self {
        Self {
            id: r.id,
            delivery_id: r.delivery_id,
            event_id: r.event_id,
            event_type: r.event_type,
            webhook: WebhookRef {
                id: r.webhook_id,
                name: r.webhook_name.unwrap_or_default(),
                url: r.webhook_url.unwrap_or_default(),
            },
            status: r.status,
            response_code: r.response_code,
            error: r.error,
            attempt: r.attempt,
            trigger: r.trigger,
            attempted_at: rfc3339(r.attempted_at),
            duration_ms: r.duration_ms,
        }
    }
}

fn cursor_after(row: &ItemRow, sort: SortKey) -> Cursor {
    let value = match sort {
        SortKey::AttemptedAt => SortValue::None,
        SortKey::Status => SortValue::Status(if row.status == "success" {
            "success"
        } else {
            "failed"
        }),
        SortKey::ResponseCode => SortValue::Code(row.response_code.unwrap_or(0)),
    };
    Cursor {
        value,
        attempted_at: row.attempted_at,
        id: row.id,
    }
}

impl LogQuery {
    /// The `since` bounds to try in turn (see [`WINDOWS`]); the last one is the request's own,
    /// so the last try is the whole request. Only newest-first pages by time are windowed.
    pub fn windows(&self, now: OffsetDateTime) -> Vec<Option<OffsetDateTime>> {
        let mut out = vec![];
        if self.sort == SortKey::AttemptedAt && self.descending {
            let anchor = [self.cursor.as_ref().map(|c| c.attempted_at), self.filter.until]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(now);
            for w in WINDOWS {
                // Checked: a (validated) cursor may still sit near the start of time.
                let Some(lo) = anchor.checked_sub(w) else { break };
                if self.filter.since.is_some_and(|since| since >= lo) {
                    break;
                }
                out.push(Some(lo));
            }
        }
        out.push(self.filter.since);
        out
    }

    /// This query with `since` replaced.
    pub fn with_since(&self, since: Option<OffsetDateTime>) -> LogQuery {
        let mut q = self.clone();
        q.filter.since = since;
        q
    }
}

/// Runs a parsed log query.
pub async fn fetch_page(db: &sqlx::PgPool, lq: &LogQuery) -> AppResult<DeliveryPage> {
    let q = match &lq.q {
        Some(q) => {
            let m = resolve_q(db, q).await?;
            if m.webhooks.is_empty() && m.types.is_empty() {
                return Ok(DeliveryPage {
                    items: vec![],
                    next_cursor: None,
                });
            }
            Some(m)
        }
        None => None,
    };
    let windows = lq.windows(OffsetDateTime::now_utc());
    let tries = windows.len();
    let mut rows: Vec<ItemRow> = vec![];
    for (i, since) in windows.into_iter().enumerate() {
        let mut qb = build_query("", &lq.with_since(since), q.as_ref());
        // `db` should be the generic-plan pool (`state::log_pool`).
        rows = qb.build_query_as().fetch_all(db).await?;
        // A full page (plus the row that says there is more) inside the window is the page:
        // everything outside it is older. Otherwise older rows may belong to it: widen.
        if rows.len() as i64 > lq.limit || i + 1 == tries {
            break;
        }
    }
    let more = rows.len() as i64 > lq.limit;
    rows.truncate(lq.limit as usize);
    let next_cursor = match rows.last() {
        Some(last) if more => Some(cursor_after(last, lq.sort).encode(lq.sort, lq.descending)),
        _ => None,
    };
    Ok(DeliveryPage {
        items: rows.into_iter().map(DeliveryItem::from).collect(),
        next_cursor,
    })
}

/// The delivery log: one item per attempt, newest first by default.
#[utoipa::path(
    get, path = "/api/v1/deliveries", tag = "deliveries", operation_id = "list_deliveries",
    params(ListParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of attempts", body = DeliveryPage),
        BadQuery, NeedsAdmin,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    _auth: Auth<Admin>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> AppResult<Json<DeliveryPage>> {
    let lq = LogQuery::parse(&params)?;
    Ok(Json(fetch_page(&state.log_db, &lq).await?))
}

/// The request as it was sent.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RequestInfo {
    pub url: String,
    /// Always `POST`.
    pub method: String,
    /// Every header sent, the signature headers included.
    #[schema(value_type = Object)]
    pub headers: serde_json::Value,
}

/// The response, when one came.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ResponseInfo {
    pub status: i32,
    #[schema(value_type = Object)]
    pub headers: serde_json::Value,
    /// The body, up to 64 KiB.
    pub body: Option<String>,
    /// Whether `body` was cut at 64 KiB.
    pub body_truncated: bool,
    /// More response headers came than are stored (at most 64 names, 16 KiB).
    pub headers_truncated: bool,
}

/// One attempt in full.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryDetail {
    #[serde(flatten)]
    pub item: DeliveryItem,
    pub request: RequestInfo,
    /// The JSON body that was sent, byte for byte (null once retention purged the event).
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Box<RawValue>>,
    /// Null when no response came (connection refused, timeout...): see `error`.
    pub response: Option<ResponseInfo>,
}

#[derive(sqlx::FromRow)]
struct DetailRow {
    #[sqlx(flatten)]
    item: ItemRow,
    request_url: String,
    request_headers: serde_json::Value,
    response_headers: Option<serde_json::Value>,
    response_body: Option<String>,
    response_body_truncated: bool,
    response_headers_truncated: bool,
    body: Option<String>,
}

/// One attempt in full: request, payload and response.
#[utoipa::path(
    get, path = "/api/v1/deliveries/{id}", tag = "deliveries", operation_id = "get_delivery",
    params(("id" = Uuid, Path, description = "The attempt id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The attempt", body = DeliveryDetail),
        BadId, NeedsAdmin,
        (status = 404, description = "No such attempt", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn detail(
    State(state): State<AppState>,
    _auth: Auth<Admin>,
    IdPath(id): IdPath,
) -> AppResult<Json<DeliveryDetail>> {
    let row: Option<DetailRow> = sqlx::query_as(
        "SELECT a.id, a.delivery_id, a.event_id, a.event_type, a.webhook_id, a.status, a.response_code,
                a.error, a.attempt, a.trigger, a.attempted_at, a.duration_ms,
                w.name AS webhook_name, w.url AS webhook_url,
                a.request_url, a.request_headers, a.response_headers, a.response_body,
                a.response_body_truncated, a.response_headers_truncated, e.body
         FROM attempts a
         LEFT JOIN webhooks w ON w.id = a.webhook_id
         LEFT JOIN events e ON e.id = a.event_id AND e.received_at = a.event_received_at
         WHERE a.id = $1
         LIMIT 1",
    )
    .bind(id)
    .fetch_optional(&state.ctx.db)
    .await?;
    let Some(row) = row else {
        return Err(AppError::NotFound(format!("no attempt with id {id}")));
    };
    let response = row.item.response_code.map(|status| ResponseInfo {
        status,
        headers: row.response_headers.unwrap_or_else(|| serde_json::json!({})),
        body: row.response_body,
        body_truncated: row.response_body_truncated,
        headers_truncated: row.response_headers_truncated,
    });
    // The stored body is the exact bytes sent; show them as JSON without re-encoding.
    let payload = row.body.and_then(|b| RawValue::from_string(b).ok());
    Ok(Json(DeliveryDetail {
        request: RequestInfo {
            url: row.request_url,
            method: "POST".into(),
            headers: row.request_headers,
        },
        payload,
        response,
        item: row.item.into(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn newest_first() -> LogQuery {
        LogQuery {
            filter: Filter::default(),
            q: None,
            sort: SortKey::AttemptedAt,
            descending: true,
            limit: 50,
            cursor: None,
        }
    }

    #[test]
    fn newest_first_pages_widen_their_window_back_from_the_cursor_until_or_now() {
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(100);
        let lq = newest_first();
        let hour = time::Duration::hours(1);
        let day = time::Duration::days(1);
        assert_eq!(
            lq.windows(now),
            vec![Some(now - hour), Some(now - day), Some(now - 7 * day), None],
            "the last try has no bound"
        );
        let mut deep = newest_first();
        let at = now - 15 * day;
        deep.cursor = Some(Cursor {
            value: SortValue::None,
            attempted_at: at,
            id: Uuid::nil(),
        });
        deep.filter.until = Some(now - day);
        assert_eq!(deep.windows(now)[0], Some(at - hour), "anchored at the cursor");
        // The request's own `since` ends the widening and is the last try.
        let mut since = newest_first();
        since.filter.since = Some(now - 2 * day);
        assert_eq!(
            since.windows(now),
            vec![Some(now - hour), Some(now - day), Some(now - 2 * day)]
        );
        since.filter.since = Some(now - time::Duration::minutes(5));
        assert_eq!(since.windows(now), vec![Some(now - time::Duration::minutes(5))]);
        // Oldest first and other sorts are not windowed.
        let mut asc = newest_first();
        asc.descending = false;
        assert_eq!(asc.windows(now), vec![None]);
        let mut by_status = newest_first();
        by_status.sort = SortKey::Status;
        assert_eq!(by_status.windows(now), vec![None]);
    }

    #[test]
    fn a_window_near_the_start_of_time_stops_instead_of_overflowing() {
        let mut lq = newest_first();
        lq.cursor = Some(Cursor {
            value: SortValue::None,
            attempted_at: time::Date::MIN.midnight().assume_utc() + time::Duration::minutes(30),
            id: Uuid::nil(),
        });
        assert_eq!(lq.windows(OffsetDateTime::now_utc()), vec![None]);
    }

    #[test]
    fn times_whose_utc_is_out_of_range_are_refused_naming_the_parameter() {
        for (name, v) in [
            ("until", "9999-12-31T23:59:59-23:59"),
            ("since", "0001-01-01T00:00:00+23:59"),
            ("since", "-0001-01-01T00:00:00Z"),
        ] {
            let err = parse_time(name, Some(v)).expect_err(v);
            assert!(err.to_string().starts_with(name), "{err}");
        }
        let t = parse_time("until", Some("2026-11-27T10:00:00+02:00"))
            .expect("valid")
            .expect("given");
        assert_eq!(t.offset(), time::UtcOffset::UTC);
        assert_eq!(t.hour(), 8);
    }

    #[test]
    fn like_metacharacters_match_literally() {
        assert_eq!(like_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
        assert_eq!(like_pattern("bill"), "%bill%");
    }

    #[test]
    fn every_bad_parameter_is_named() {
        let cases: [(&str, ListParams); 9] = [
            (
                "sort",
                ListParams {
                    sort: Some("size".into()),
                    ..Default::default()
                },
            ),
            (
                "order",
                ListParams {
                    order: Some("up".into()),
                    ..Default::default()
                },
            ),
            (
                "limit",
                ListParams {
                    limit: Some("0".into()),
                    ..Default::default()
                },
            ),
            (
                "limit",
                ListParams {
                    limit: Some("1000".into()),
                    ..Default::default()
                },
            ),
            (
                "since",
                ListParams {
                    since: Some("yesterday".into()),
                    ..Default::default()
                },
            ),
            (
                "status",
                ListParams {
                    status: Some("ok".into()),
                    ..Default::default()
                },
            ),
            (
                "webhook_id",
                ListParams {
                    webhook_id: Some("1".into()),
                    ..Default::default()
                },
            ),
            (
                "response_code",
                ListParams {
                    response_code: Some("2000".into()),
                    ..Default::default()
                },
            ),
            (
                "cursor",
                ListParams {
                    cursor: Some("abc".into()),
                    ..Default::default()
                },
            ),
        ];
        for (name, p) in cases {
            let err = LogQuery::parse(&p).expect_err(name);
            assert!(err.to_string().starts_with(name), "{name}: {err}");
        }
    }
}
