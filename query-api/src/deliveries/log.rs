//! The log's pages: newest-first pages tried in widening time windows, and the list route.

use axum::{Json, extract::State};
use time::OffsetDateTime;

use super::{
    params::{ListParams, LogQuery},
    rows::{DeliveryItem, DeliveryPage, ItemRow, cursor_after},
    sql::{build_query, resolve_q},
};
use crate::{
    auth::{Admin, Auth},
    cursor::SortKey,
    error::AppResult,
    extract::ApiQuery,
    problems::{BadQuery, NeedsAdmin},
    state::AppState,
};

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

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::{
        cursor::{Cursor, SortValue},
        deliveries::Filter,
    };

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
}
