//! The log's SQL: `q` resolved to webhooks and types, the filters, and the page query as a
//! UNION of ordered index scans (one branch per match) continued from the keyset cursor.

use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use super::params::{Filter, LogQuery};
use crate::cursor::{SortKey, SortValue};

/// Above this many matching webhooks + types, `q` runs as one `= ANY` scan instead of branches.
const MAX_Q_BRANCHES: usize = 32;

/// `q` resolved to the webhooks and event types it matches.
#[derive(Debug, Default, Clone)]
pub struct QMatch {
    pub webhooks: Vec<Uuid>,
    pub types: Vec<String>,
    /// q matches every webhook, hence every attempt.
    pub everything: bool,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_metacharacters_match_literally() {
        assert_eq!(like_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
        assert_eq!(like_pattern("bill"), "%bill%");
    }
}
