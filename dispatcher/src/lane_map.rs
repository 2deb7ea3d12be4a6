//! Every lane of a dispatcher process: the map from webhook to lane, and what the lanes share
//! (the process's backlog count, the lanes waiting for a process slot, the request timeout).

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use uuid::Uuid;

use super::{Lane, state::State};

/// What every lane of a process shares.
pub(super) struct Shared {
    /// Attempts queued in every lane of the process that count as its backlog.
    pub(super) backlog: AtomicUsize,
    /// Lanes with attempts waiting for a process slot (not for one of their own), in order.
    pub(super) starved: Mutex<VecDeque<Uuid>>,
    /// The request timeout (ms): the longest an `in_flight` deferral waits.
    pub(super) timeout_ms: f64,
}

/// Every lane of this dispatcher.
pub struct Lanes {
    map: Mutex<HashMap<Uuid, Arc<Lane>>>,
    shared: Arc<Shared>,
}

impl Default for Lanes {
    fn default() -> Self {
        Self::new(Duration::from_secs(10))
    }
}

impl Lanes {
    /// Lanes for requests that time out after `request_timeout`.
    pub fn new(request_timeout: Duration) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            shared: Arc::new(Shared {
                backlog: AtomicUsize::new(0),
                starved: Mutex::new(VecDeque::new()),
                timeout_ms: request_timeout.as_secs_f64() * 1000.0,
            }),
        }
    }

    pub fn get(&self, webhook_id: Uuid) -> Arc<Lane> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(webhook_id)
            .or_insert_with(|| {
                Arc::new(Lane {
                    webhook_id,
                    shared: self.shared.clone(),
                    disabled_at: Mutex::new(None),
                    state: Mutex::new(State::new()),
                })
            })
            .clone()
    }

    /// Attempts waiting in all queues that count as the process's backlog.
    pub fn backlog(&self) -> usize {
        self.shared.backlog.load(Ordering::Relaxed)
    }

    /// How many lanes wait for a process slot.
    pub fn starved_len(&self) -> usize {
        self.shared
            .starved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// The lane that has waited longest for a process slot. It leaves the list; the caller
    /// must [`Lane::pump`] it (which lists it again if it still finds no slot), or it would
    /// never be listed again.
    pub fn next_starved(&self) -> Option<Arc<Lane>> {
        loop {
            let id = self
                .shared
                .starved
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop_front()?;
            if let Some(lane) = self.find(id) {
                return Some(lane);
            }
        }
    }

    /// Every lane (the sweeper walks them).
    pub fn all(&self) -> Vec<Arc<Lane>> {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// The lane of a webhook if it has one (tests).
    pub fn find(&self, webhook_id: Uuid) -> Option<Arc<Lane>> {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&webhook_id)
            .cloned()
    }
}
