//! The group-commit writer shared by every inbound source.
//!
//! Request handlers verify and parse a delivery, then hand the resulting
//! item to one writer task per source and process, and wait for its
//! verdict. The writer drains whatever has queued up (at most
//! [`MAX_BATCH`] items) and gives the batch to the source's commit
//! function, which writes it in one transaction with a fixed number of
//! set-based statements, whatever the batch size. Group commit is the
//! classic answer to a database with one writer at a time (SQLite) and
//! saves PostgreSQL a round trip per row. Under no load a batch is one item
//! and nothing waits.
//!
//! If a batch's transaction fails, each item is committed alone, so one bad
//! event fails only its own delivery. A commit that reports a race with
//! another process (`Ok(None)`: everything rolled back) is tried again, up
//! to three times.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};

/// Most items committed in one transaction. Bounds the statement sizes
/// (SQLite allows 32,766 bound values) and the latency a batch adds.
pub const MAX_BATCH: usize = 256;

/// What a source's commit function returns for a batch: one verdict per
/// item in order, or `None` when it raced another process and rolled back.
pub type CommitFuture<'a, V> = Pin<Box<dyn Future<Output = Result<Option<Vec<V>>>> + Send + 'a>>;

struct Job<I, V> {
    item: I,
    reply: oneshot::Sender<Result<V>>,
}

/// The running writer's queue, if one was started.
type Slot<I, V> = Mutex<Option<mpsc::UnboundedSender<Job<I, V>>>>;

/// Handle to a source's writer, started on first use (and again if it ever
/// stopped: the items it held are answered 5xx, so the source retries).
/// Cheap to clone. The writer lives as long as the runtime. Its queue is
/// unbounded: each queued item is a request waiting for its answer, so
/// HTTP concurrency bounds it.
pub struct Writer<I, V> {
    queue: Arc<Slot<I, V>>,
    counters: Arc<Counters>,
}

impl<I, V> Clone for Writer<I, V> {
    fn clone(&self) -> Self {
        Writer {
            queue: Arc::clone(&self.queue),
            counters: Arc::clone(&self.counters),
        }
    }
}

impl<I, V> Default for Writer<I, V> {
    fn default() -> Self {
        Writer {
            queue: Arc::default(),
            counters: Arc::default(),
        }
    }
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    events: AtomicU64,
}

/// What a writer has done since start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterStats {
    /// Transactions attempted (batches).
    pub batches: u64,
    /// Items handed to the writer.
    pub events: u64,
}

impl<I: Send + Sync + 'static, V: Send + 'static> Writer<I, V> {
    /// Batches and items so far (items per batch shows the grouping).
    pub fn stats(&self) -> WriterStats {
        WriterStats {
            batches: self.counters.batches.load(Ordering::Relaxed),
            events: self.counters.events.load(Ordering::Relaxed),
        }
    }

    /// Commits `item` with whatever else is queued, through `commit` (one
    /// transaction for a batch; `Ok(None)` when it raced another process and
    /// rolled back); waits for the verdict. `commit` is the writer's for as
    /// long as the writer runs: pass the same function every time.
    pub async fn submit<F>(&self, item: I, commit: F) -> Result<V>
    where
        F: for<'a> Fn(&'a [&'a I]) -> CommitFuture<'a, V> + Send + Sync + 'static,
    {
        let queue = {
            let mut slot = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            match slot.as_ref() {
                Some(tx) if !tx.is_closed() => tx.clone(),
                _ => {
                    let (tx, rx) = mpsc::unbounded_channel();
                    tokio::spawn(run(rx, Arc::clone(&self.counters), commit));
                    *slot = Some(tx.clone());
                    tx
                }
            }
        };
        let (reply, verdict) = oneshot::channel();
        queue
            .send(Job { item, reply })
            .map_err(|_| Error::internal("the webhook writer has stopped"))?;
        verdict
            .await
            .map_err(|_| Error::internal("the webhook writer dropped an event"))?
    }
}

async fn run<I, V, F>(
    mut rx: mpsc::UnboundedReceiver<Job<I, V>>,
    counters: Arc<Counters>,
    commit: F,
) where
    F: for<'a> Fn(&'a [&'a I]) -> CommitFuture<'a, V>,
{
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        let items: Vec<&I> = jobs.iter().map(|j| &j.item).collect();
        counters.batches.fetch_add(1, Ordering::Relaxed);
        counters
            .events
            .fetch_add(items.len() as u64, Ordering::Relaxed);
        let verdicts = match commit_with_retry(&commit, &items).await {
            Ok(verdicts) => verdicts.into_iter().map(Ok).collect(),
            Err(e) if items.len() == 1 => vec![Err(e)],
            Err(e) => {
                tracing::warn!(error = %e, events = items.len(), "webhook batch failed; committing its events one by one");
                let mut verdicts = Vec::with_capacity(items.len());
                for item in &items {
                    verdicts.push(
                        commit_with_retry(&commit, std::slice::from_ref(item))
                            .await
                            .and_then(|mut v| {
                                v.pop()
                                    .ok_or_else(|| Error::internal("a commit gave no verdict"))
                            }),
                    );
                }
                verdicts
            }
        };
        drop(items);
        for (job, verdict) in jobs.drain(..).zip(verdicts) {
            // The handler may have gone (client disconnected): the source retries.
            let _ = job.reply.send(verdict);
        }
    }
}

/// Commits `items`; retries when another process claimed one of them
/// between our ledger read and our claim (PostgreSQL only).
async fn commit_with_retry<I, V, F>(commit: &F, items: &[&I]) -> Result<Vec<V>>
where
    F: for<'a> Fn(&'a [&'a I]) -> CommitFuture<'a, V>,
{
    for _ in 0..3 {
        if let Some(verdicts) = commit(items).await? {
            if verdicts.len() != items.len() {
                return Err(Error::internal(
                    "a commit gave the wrong number of verdicts",
                ));
            }
            return Ok(verdicts);
        }
    }
    Err(Error::internal(
        "webhook batch kept racing another process for its events",
    ))
}
