//! The settings in force, as every component reads them: a snapshot behind a lock that a
//! background task refreshes from PostgreSQL every `HOOKRELAY_SETTINGS_REFRESH`.

use std::{
    sync::{Arc, RwLock, Weak},
    time::Duration,
};

use sqlx::PgPool;

use super::{Settings, load};
use crate::{Config, retry::RetryPolicy};

struct Inner {
    base: Settings,
    current: RwLock<Arc<Settings>>,
    db: PgPool,
    every: Duration,
}

/// The settings in force, as every component reads them: [`SettingsCache::get`] never waits
/// for the database. A background task (started with the cache when there is a Tokio runtime)
/// re-reads the row every `HOOKRELAY_SETTINGS_REFRESH`; it ends when the last clone of the cache
/// is dropped or the pool is closed. Until the first read it answers the env/TOML values.
#[derive(Clone)]
pub struct SettingsCache {
    inner: Arc<Inner>,
}

impl SettingsCache {
    /// A cache for `config` on `db`, refreshing in the background.
    pub fn new(config: &Config, db: PgPool) -> Self {
        let base = Settings::from_config(config);
        let cache = Self {
            inner: Arc::new(Inner {
                current: RwLock::new(Arc::new(base.clone())),
                base,
                db,
                every: config.settings_refresh.0,
            }),
        };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(refresh_loop(Arc::downgrade(&cache.inner)));
        }
        cache
    }

    /// The values in force (as of the last refresh).
    pub fn get(&self) -> Arc<Settings> {
        match self.inner.current.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The default retry policy in force.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.get().retry.clone()
    }

    /// The retention in force.
    pub fn retention(&self) -> Duration {
        self.get().retention
    }

    /// Reads the row now and updates the snapshot (after a change, or before a rare job such
    /// as retention that should not act on a value up to a refresh period old).
    pub async fn refresh(&self) -> sqlx::Result<Arc<Settings>> {
        refresh(&self.inner).await
    }
}

async fn refresh(inner: &Inner) -> sqlx::Result<Arc<Settings>> {
    let stored = load(&inner.db).await?;
    let next = Arc::new(match &stored {
        Some(s) => inner.base.clone().with(s),
        None => inner.base.clone(),
    });
    let mut g = match inner.current.write() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    if **g != *next {
        tracing::info!(
            retention = %crate::duration::format_duration(next.retention),
            retry = ?next.retry,
            "settings in force changed"
        );
    }
    *g = next.clone();
    Ok(next)
}

async fn refresh_loop(inner: Weak<Inner>) {
    let mut failing = false;
    loop {
        let every = {
            let Some(inner) = inner.upgrade() else { return };
            if inner.db.is_closed() {
                return;
            }
            match refresh(&inner).await {
                Ok(_) if failing => {
                    failing = false;
                    tracing::info!("settings are read again");
                }
                Ok(_) => {}
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "reading the settings failed; the last values stay in force");
                }
                Err(_) => {}
            }
            inner.every
        };
        tokio::time::sleep(every).await;
    }
}
