//! The log's query parameters: parsed and validated, each error naming its parameter. The
//! time, status, category and range parsers are shared with bulk retry and the activity log.

use hookrelay_shared::event::is_valid_type;
use serde::Deserialize;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    cursor::{Cursor, SortKey},
    error::AppError,
    extract::truncate,
};

/// Default and largest page size.
pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;
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

/// A page size: [`DEFAULT_LIMIT`] when absent, else 1 to [`MAX_LIMIT`].
pub fn parse_limit(v: Option<&str>) -> Result<i64, AppError> {
    match v.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(DEFAULT_LIMIT),
        Some(s) => match s.parse::<i64>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(AppError::bad(format!(
                "limit: `{}` is not a number from 1 to {MAX_LIMIT}",
                truncate(s, 20)
            ))),
        },
    }
}

/// An id parameter; not a UUID is a 400 naming `name`.
pub fn parse_uuid(name: &str, v: Option<&str>) -> Result<Option<Uuid>, AppError> {
    v.map(|s| {
        Uuid::parse_str(s).map_err(|_| AppError::bad(format!("{name}: `{}` is not a UUID", truncate(s, 40))))
    })
    .transpose()
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
        let webhook_id = parse_uuid("webhook_id", nonempty(&p.webhook_id))?;
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
        let limit = parse_limit(nonempty(&p.limit))?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
