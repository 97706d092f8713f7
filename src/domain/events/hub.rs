//! The live stream of each business's events (server-sent events), fed
//! from the log: the log is the truth, the hub only says when to read it.
//!
//! Per business with subscribers there is one [`Feed`]: it reads new events
//! from the database once and broadcasts them, serialized once, to every
//! subscriber (a `tokio::sync::broadcast` channel), so a thousand
//! subscribers cost one read per commit, not a thousand. What wakes a feed:
//! on PostgreSQL, `LISTEN switchboard_events` (the notification the change's
//! transaction sent, delivered at commit, from any instance); everywhere, a
//! poll of the subscribed businesses' `event_seq` every `events.poll_ms`
//! (SQLite: the only wake-up, 25 ms by default; PostgreSQL: a safety net
//! behind the notifications, 1 s).
//!
//! A subscriber resumes after any number (the SSE `Last-Event-ID`): it
//! subscribes to the feed first, reads what it missed from the log, then
//! takes the broadcast, skipping what it already sent; a gap (it fell
//! behind the channel, or a number it never saw) is read from the log
//! again. So every subscriber gets every event of its business, in order,
//! exactly once, whatever the timing.
//!
//! The background task (listener and poll) runs only while some feed has
//! subscribers. [`Hub::close`] ends every stream (graceful shutdown).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use entity::{business, event};
use sea_orm::{
    ColumnTrait, DatabaseBackend, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

use super::EventView;
use crate::error::Result;

/// Events read from the log per query.
const PAGE: u64 = 500;
/// Events a feed's channel holds for a slow subscriber before it must read
/// the log instead.
const CHANNEL_CAPACITY: usize = 256;

/// One event ready to send: its number, kind and JSON (serialized once).
#[derive(Debug)]
pub struct StreamEvent {
    /// Its number within the business.
    pub seq: i64,
    /// Its kind.
    pub event_type: String,
    /// The [`EventView`] as JSON.
    pub json: String,
}

impl From<EventView> for StreamEvent {
    fn from(v: EventView) -> StreamEvent {
        StreamEvent {
            seq: v.seq,
            json: serde_json::to_string(&v).unwrap_or_default(),
            event_type: v.event_type,
        }
    }
}

/// The broadcast of one business's events.
struct Feed {
    tx: broadcast::Sender<Arc<StreamEvent>>,
    /// The number of the last event broadcast; held while reading, so one
    /// read at a time per business.
    last: tokio::sync::Mutex<i64>,
}

/// Every feed, and how they are woken.
pub struct Hub {
    db: DatabaseConnection,
    database_url: String,
    poll: Duration,
    feeds: Mutex<HashMap<Uuid, Arc<Feed>>>,
    running: Mutex<bool>,
    closed: watch::Sender<bool>,
}

async fn read_after(
    db: &DatabaseConnection,
    business_id: Uuid,
    after: i64,
) -> Result<Vec<event::Model>> {
    Ok(event::Entity::find()
        .filter(event::Column::BusinessId.eq(business_id))
        .filter(event::Column::Seq.gt(after))
        .order_by_asc(event::Column::Seq)
        .limit(PAGE)
        .all(db)
        .await?)
}

impl Hub {
    /// A hub over `db`; `poll` is how often subscribed businesses are
    /// checked for new events (see the module docs).
    pub fn new(db: DatabaseConnection, database_url: String, poll: Duration) -> Arc<Hub> {
        Arc::new(Hub {
            db,
            database_url,
            poll,
            feeds: Mutex::default(),
            running: Mutex::new(false),
            closed: watch::channel(false).0,
        })
    }

    /// Businesses with an open stream.
    pub fn feeds(&self) -> usize {
        self.feeds
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Ends every stream now and refuses new ones (graceful shutdown: an
    /// open stream would otherwise keep its connection forever).
    pub fn close(&self) {
        let _ = self.closed.send(true);
    }

    /// A receiver of `business_id`'s feed, made under the feeds' lock (so
    /// the feed is never seen without a subscriber and dropped meanwhile).
    fn receiver(
        self: &Arc<Self>,
        business_id: Uuid,
        latest: i64,
    ) -> broadcast::Receiver<Arc<StreamEvent>> {
        let mut feeds = self.feeds.lock().unwrap_or_else(PoisonError::into_inner);
        let rx = feeds
            .entry(business_id)
            .or_insert_with(|| {
                Arc::new(Feed {
                    tx: broadcast::channel(CHANNEL_CAPACITY).0,
                    last: tokio::sync::Mutex::new(latest),
                })
            })
            .tx
            .subscribe();
        drop(feeds);
        self.ensure_running();
        rx
    }

    /// Subscribes to `business_id`'s events after number `after` (or, with
    /// `None`, after the latest one: only what happens from now on).
    pub async fn subscribe(
        self: &Arc<Self>,
        business_id: Uuid,
        after: Option<i64>,
    ) -> Result<Subscription> {
        let latest = super::latest(&self.db, business_id).await?;
        let rx = self.receiver(business_id, latest);
        let start = after.unwrap_or(latest).max(0);
        let mut sub = Subscription {
            hub: Arc::clone(self),
            business_id,
            last_sent: start,
            rx,
            backlog: VecDeque::new(),
            closed: self.closed.subscribe(),
        };
        sub.catch_up().await?;
        Ok(sub)
    }

    /// Reads and broadcasts what `business_id`'s feed has not sent yet.
    async fn pump(&self, business_id: Uuid) -> Result<()> {
        let Some(feed) = self
            .feeds
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&business_id)
            .cloned()
        else {
            return Ok(());
        };
        let mut last = feed.last.lock().await;
        loop {
            let rows = read_after(&self.db, business_id, *last).await?;
            let n = rows.len() as u64;
            for row in rows {
                *last = row.seq;
                let _ = feed
                    .tx
                    .send(Arc::new(StreamEvent::from(EventView::from(row))));
            }
            if n < PAGE {
                return Ok(());
            }
        }
    }

    /// Starts the background task if it is not running.
    fn ensure_running(self: &Arc<Self>) {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if *running {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        *running = true;
        let hub = Arc::downgrade(self);
        handle.spawn(run(hub));
    }

    /// The subscribed businesses, forgetting those nobody listens to.
    fn subscribed(&self) -> Vec<Uuid> {
        let mut feeds = self.feeds.lock().unwrap_or_else(PoisonError::into_inner);
        feeds.retain(|_, f| f.tx.receiver_count() > 0);
        feeds.keys().copied().collect()
    }

    /// Polls the subscribed businesses once; false when there are none.
    async fn poll_once(&self) -> bool {
        let ids = self.subscribed();
        if ids.is_empty() {
            return false;
        }
        let seqs: Vec<(Uuid, i64)> = match business::Entity::find()
            .select_only()
            .column(business::Column::Id)
            .column(business::Column::EventSeq)
            .filter(business::Column::Id.is_in(ids))
            .into_tuple()
            .all(&self.db)
            .await
        {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "polling for new events failed");
                return true;
            }
        };
        for (id, seq) in seqs {
            let behind = {
                let feeds = self.feeds.lock().unwrap_or_else(PoisonError::into_inner);
                feeds.get(&id).cloned()
            };
            if let Some(feed) = behind {
                let known = *feed.last.lock().await;
                if seq > known
                    && let Err(e) = self.pump(id).await
                {
                    tracing::warn!(error = %e, business = %id, "reading new events failed");
                }
            }
        }
        true
    }
}

/// The background task: LISTEN (PostgreSQL) and the poll, while anyone
/// subscribes; it ends when nobody does (or the hub is gone or closed).
async fn run(hub: Weak<Hub>) {
    let listener = match hub.upgrade() {
        Some(h) if h.db.get_database_backend() == DatabaseBackend::Postgres => {
            let url = h.database_url.clone();
            Some(tokio::spawn(listen(hub.clone(), url)))
        }
        _ => None,
    };
    loop {
        let Some(h) = hub.upgrade() else { break };
        if *h.closed.borrow() || !h.poll_once().await {
            // Stop only if, under the lock new subscribers take to start
            // the task, nobody subscribes.
            let mut running = h.running.lock().unwrap_or_else(PoisonError::into_inner);
            if *h.closed.borrow() || h.subscribed().is_empty() {
                *running = false;
                break;
            }
            continue;
        }
        let poll = h.poll;
        drop(h);
        tokio::time::sleep(poll).await;
    }
    if let Some(l) = listener {
        l.abort();
    }
}

/// `LISTEN switchboard_events`: wakes the feed a notification names,
/// reconnecting after errors. Aborted with [`run`].
async fn listen(hub: Weak<Hub>, url: String) {
    use sea_orm::sqlx::postgres::PgListener;
    let mut backoff = Duration::from_millis(100);
    loop {
        let mut listener = match PgListener::connect(&url).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "LISTEN connection failed; the poll covers meanwhile");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        if let Err(e) = listener.listen(super::CHANNEL).await {
            tracing::warn!(error = %e, "LISTEN failed");
            tokio::time::sleep(backoff).await;
            continue;
        }
        backoff = Duration::from_millis(100);
        // What committed before the LISTEN took effect (since the task
        // started, or while the connection was down) sent no notification
        // this connection saw: read it from the log now.
        match hub.upgrade() {
            Some(h) => {
                h.poll_once().await;
            }
            None => return,
        }
        loop {
            match listener.recv().await {
                Ok(n) => {
                    let Some(h) = hub.upgrade() else { return };
                    if let Ok(id) = Uuid::try_parse(n.payload())
                        && let Err(e) = h.pump(id).await
                    {
                        tracing::warn!(error = %e, "reading notified events failed");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "LISTEN connection lost; reconnecting");
                    break;
                }
            }
        }
    }
}

/// One subscriber's position in its business's events.
pub struct Subscription {
    hub: Arc<Hub>,
    business_id: Uuid,
    last_sent: i64,
    rx: broadcast::Receiver<Arc<StreamEvent>>,
    backlog: VecDeque<Arc<StreamEvent>>,
    closed: watch::Receiver<bool>,
}

impl Subscription {
    /// Reads from the log what comes after the last event sent.
    async fn catch_up(&mut self) -> Result<()> {
        let mut after = self.backlog.back().map_or(self.last_sent, |e| e.seq);
        loop {
            let rows = read_after(&self.hub.db, self.business_id, after).await?;
            let n = rows.len() as u64;
            for row in rows {
                after = row.seq;
                self.backlog
                    .push_back(Arc::new(StreamEvent::from(EventView::from(row))));
            }
            if n < PAGE {
                return Ok(());
            }
        }
    }

    /// The next event, in order; `None` when the hub closes.
    pub async fn next(&mut self) -> Option<Arc<StreamEvent>> {
        loop {
            if let Some(e) = self.backlog.pop_front() {
                if e.seq <= self.last_sent {
                    continue;
                }
                self.last_sent = e.seq;
                return Some(e);
            }
            if *self.closed.borrow() {
                return None;
            }
            let received = tokio::select! {
                r = self.rx.recv() => r,
                _ = self.closed.changed() => return None,
            };
            match received {
                Ok(e) if e.seq <= self.last_sent => {}
                Ok(e) if e.seq == self.last_sent + 1 => {
                    self.last_sent = e.seq;
                    return Some(e);
                }
                // A gap, or the channel ran ahead of us: the log has it.
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    if let Err(e) = self.catch_up().await {
                        tracing::warn!(error = %e, "catching up a subscriber failed");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}
