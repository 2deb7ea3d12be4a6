//! PostgreSQL: the pool, database creation, migrations and daily partitions.

use std::{str::FromStr, time::Duration};

use sqlx::{
    ConnectOptions, Connection, Executor, PgPool,
    postgres::{PgConnectOptions, PgConnection, PgPoolOptions},
};

use crate::Config;

/// The embedded migrations (`shared/migrations`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Partitions are kept this many days ahead of today.
pub const PARTITION_DAYS_AHEAD: i32 = 7;

/// Turns off sequential scans, hash joins and merge joins for the rest of the transaction.
///
/// The dispatcher's batch statements (the duplicate check on `events`, the UPDATE of
/// `deliveries` joined to the batch) look up a few hundred keys by primary key. While a
/// partition is new or its statistics are stale the planner takes it for tiny and picks a
/// sequential scan or a hash join, and the cached plan then scans the whole partition for every
/// batch as it grows: at 1,000 events/s PostgreSQL spent ~500 µs of CPU per delivery, mostly
/// in `id = ANY(...)` over every row. Index plans are right at every size.
pub async fn index_plans_only(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::raw_sql(
        "SET LOCAL enable_seqscan = off; SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off",
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// Errors of the database layer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("HOOKRELAY_DATABASE_URL is not a valid PostgreSQL URL: {0}")]
    BadUrl(String),
    #[error("database: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

fn options(config: &Config) -> Result<PgConnectOptions, DbError> {
    PgConnectOptions::from_str(&config.database_url)
        .map(|o| o.application_name("hookrelay").disable_statement_logging())
        .map_err(|e| DbError::BadUrl(e.to_string()))
}

/// Creates the configured database if it does not exist yet (connecting to `postgres`).
pub async fn create_database_if_missing(config: &Config) -> Result<(), DbError> {
    let opts = options(config)?;
    let name = opts.get_database().unwrap_or("postgres").to_owned();
    if PgConnection::connect_with(&opts).await.is_ok() {
        return Ok(());
    }
    let mut admin = PgConnection::connect_with(&opts.clone().database("postgres")).await?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(&name)
        .fetch_one(&mut admin)
        .await?;
    if !exists {
        let sql = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        if let Err(e) = admin.execute(sqlx::AssertSqlSafe(sql)).await {
            // Another replica may have created it at the same moment.
            let raced = e
                .as_database_error()
                .and_then(|d| d.code())
                .is_some_and(|c| c == "42P04" || c == "23505");
            if !raced {
                return Err(e.into());
            }
        }
    }
    admin.close().await?;
    Ok(())
}

/// A pool on the configured database.
pub async fn connect(config: &Config, max_connections: u32) -> Result<PgPool, DbError> {
    connect_warm(config, max_connections, 0).await
}

/// A pool on the configured database that keeps at least `warm` connections open, all of them
/// opened before it is returned.
///
/// Opening a connection is not free: with TLS (sqlx's default `sslmode=prefer` meets a server
/// with `ssl = on`, as Debian's is) each one costs a handshake, and a pool that opens them
/// on demand does it in the busiest moment, while the callers wait. Measured (2026-12-03, load
/// tool at 1,000 events/s x 1 webhook, 3,000 events): the first second's p99 publish -> first
/// attempt was 137-143 ms with connections opened on demand and 17-19 ms with TLS off; the
/// dispatcher opens its connections here instead, before it consumes anything.
pub async fn connect_warm(config: &Config, max_connections: u32, warm: u32) -> Result<PgPool, DbError> {
    let warm = warm.min(max_connections);
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(warm)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options(config)?)
        .await?;
    // Held at once, so each is a connection of its own (not one taken and given back `warm`
    // times); they go back to the pool idle.
    let open = futures::future::try_join_all((0..warm).map(|_| pool.acquire())).await?;
    drop(open);
    Ok(pool)
}

/// Key of the session-level advisory lock held while the schema is brought up to date
/// (`"hookrela"` in ASCII). sqlx's migrator takes a lock of its own around the migrations,
/// but not around the partitions made after them, and it keeps its lock on a pooled connection
/// when a migration fails; this one is held on a connection of its own that is closed at the
/// end, so every way out releases it.
pub const MIGRATION_LOCK: i64 = 0x686f_6f6b_7265_6c61;

/// Creates the database if needed, applies migrations and makes sure partitions exist, on
/// one connection holding [`MIGRATION_LOCK`]: any number of components may start at once on
/// a new database; the first migrates, the others wait for it and find nothing left to do.
/// Every component does this on start.
pub async fn prepare(config: &Config) -> Result<(), DbError> {
    create_database_if_missing(config).await?;
    let mut conn = PgConnection::connect_with(&options(config)?).await?;
    let result = migrate_locked(&mut conn).await;
    // Closing the session releases the lock also when migrating failed.
    let _ = conn.close().await;
    result
}

async fn migrate_locked(conn: &mut PgConnection) -> Result<(), DbError> {
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await?;
    MIGRATOR.run(&mut *conn).await?;
    ensure_partitions(&mut *conn, 2, PARTITION_DAYS_AHEAD).await?;
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// [`prepare`], then a small pool on the database (for the admin commands).
pub async fn migrate(config: &Config) -> Result<PgPool, DbError> {
    prepare(config).await?;
    connect(config, 4).await
}

/// Creates the daily partitions from `days_back` days ago to `days_ahead` days ahead.
pub async fn ensure_partitions<'e, E: sqlx::PgExecutor<'e>>(
    exec: E,
    days_back: i32,
    days_ahead: i32,
) -> Result<i32, DbError> {
    let created: i32 = sqlx::query_scalar("SELECT hookrelay_ensure_partitions($1, $2)")
        .bind(days_back)
        .bind(days_ahead)
        .fetch_one(exec)
        .await?;
    Ok(created)
}
