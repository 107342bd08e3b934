//! The usage ledger: records go to a sink from one writer thread, batched, in order; hooks
//! run on a thread of their own, so neither a slow store nor a slow hook holds up a request.

use std::cell::Cell;
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::bodies::RequestBodies;
use super::query::{UsageFilter, UsageQuery, UsageTotals};
use super::record::{RecordStatus, UsageRecord};
use super::request_log;
use super::sink::{LedgerError, LedgerSink, MemorySink};

/// User code called with every settled record (see [`Ledger::on_request_end`]).
pub type RequestEndHook = Arc<dyn Fn(&UsageRecord) + Send + Sync>;

type Ack = Box<dyn FnOnce(Result<(), LedgerError>) + Send>;

enum Op {
    Write(Box<UsageRecord>, Option<Ack>),
    /// A settled record whose request's log line the writer writes ([`request_log`]), with
    /// the display label of the key it came with.
    Settle(Box<UsageRecord>, Option<String>),
    /// A pending record its sink has journaled: the writer may hold it back for
    /// [`OPEN_HOLD`], so that a request ending sooner is written once, settled.
    Open(Box<UsageRecord>),
    /// Bodies of a record queued before them (`server.log_bodies`).
    Bodies(Box<RequestBodies>),
    /// Delete what started before this Unix millisecond (retention).
    Purge(i64),
    Flush(Ack),
}

impl Op {
    /// Whether somebody waits on this op, so the writer must not linger before writing it.
    fn awaited(&self) -> bool {
        matches!(self, Op::Write(_, Some(_)) | Op::Flush(_))
    }
}

/// The writer's inbox. Unlike a channel, whose every send wakes a blocked receiver, a push wakes
/// the writer only when it has to act: it is idle, somebody waits on the op, or a batch is full.
/// Records nobody waits on (settles, opens in a memory ledger) then cost no thread switch each;
/// the writer takes them in one go when its linger ends.
struct OpQueue {
    state: Mutex<QueueState>,
    wake: Condvar,
}

#[derive(Default)]
struct QueueState {
    ops: Vec<Op>,
    /// The writer sleeps until pushed to (rather than lingering until a deadline).
    writer_idle: bool,
    /// An op somebody waits on is queued.
    awaited: bool,
    /// The ledger is gone (or its writer never started): pushes fail, the writer drains and ends.
    closed: bool,
}

impl OpQueue {
    fn new() -> Self {
        OpQueue {
            state: Mutex::new(QueueState::default()),
            wake: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `op`; gives it back when the writer has stopped.
    fn push(&self, op: Op) -> Result<(), Op> {
        let mut state = self.lock();
        if state.closed {
            return Err(op);
        }
        let awaited = op.awaited();
        state.ops.push(op);
        state.awaited |= awaited;
        if state.writer_idle || awaited || [LINGER_BATCH, MAX_BATCH].contains(&state.ops.len()) {
            state.writer_idle = false;
            drop(state);
            self.wake.notify_one();
        }
        Ok(())
    }

    fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
    }

    /// Moves the queued ops into `into` (empty): waits for the first (or until `until`, when
    /// given, then takes none), then up to `linger` for more unless somebody waits on one,
    /// since each commit costs the same few page writes whatever it holds. A first op after a
    /// long idle wait (sparse requests) gets no more than [`SETTLE_LINGER`].
    fn take(&self, into: &mut Vec<Op>, until: Option<Instant>, linger: Duration) -> Taken {
        let mut state = self.lock();
        let mut idle_since = None;
        while state.ops.is_empty() {
            if state.closed {
                return Taken {
                    open: false,
                    idle: Duration::ZERO,
                };
            }
            idle_since.get_or_insert_with(Instant::now);
            state.writer_idle = true;
            state = match until {
                None => self
                    .wake
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(until) => {
                    let wait = until.saturating_duration_since(Instant::now());
                    if wait.is_zero() {
                        state.writer_idle = false;
                        return Taken {
                            open: true,
                            idle: Duration::ZERO,
                        };
                    }
                    self.wake
                        .wait_timeout(state, wait)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
        state.writer_idle = false;
        let now = Instant::now();
        let idle = idle_since.map_or(Duration::ZERO, |since| now.duration_since(since));
        let linger = if idle >= BUSY_GAP {
            linger.min(SETTLE_LINGER)
        } else {
            linger
        };
        let linger_until = now + linger;
        let full_from = now + FULL_AFTER;
        while !state.awaited && !state.closed && state.ops.len() < MAX_BATCH {
            let now = Instant::now();
            if state.ops.len() >= LINGER_BATCH && now >= full_from {
                break;
            }
            let until = if state.ops.len() >= LINGER_BATCH {
                full_from.min(linger_until)
            } else {
                linger_until
            };
            let wait = until.saturating_duration_since(now);
            if wait.is_zero() {
                break;
            }
            state = self
                .wake
                .wait_timeout(state, wait)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        state.awaited = false;
        std::mem::swap(into, &mut state.ops);
        Taken { open: true, idle }
    }
}

/// What [`OpQueue::take`] found.
struct Taken {
    /// False once the queue is closed and drained.
    open: bool,
    /// How long the writer waited, idle, for the first op it took.
    idle: Duration,
}

/// How often retention deletes expired records after the first time (at start).
const PURGE_INTERVAL: Duration = Duration::from_secs(3600);

/// Most records written in one batch (one transaction in SQLite).
const MAX_BATCH: usize = 1024;
/// How long a batch that nobody waits on may wait for more records before it is written.
const SETTLE_LINGER: Duration = Duration::from_millis(2);

/// The longest linger while records come fast (the last batch held at least [`BUSY_BATCH`],
/// or came soon after the one before): commits fewer and larger, so the writer takes less of
/// the CPU the requests need. A sparse request is still written within [`SETTLE_LINGER`] of
/// its end.
const BUSY_LINGER: Duration = Duration::from_millis(50);

/// A busy linger ends once it has lasted [`FULL_AFTER`] and holds [`LINGER_BATCH`] ops. A
/// commit costs about the same page writes for a few records as for fifty, so at a moderate
/// rate the writer waits longer to fill a batch (at 1,000 requests a second its CPU a request
/// halved against a 10 ms linger, bench/README.md); from about 5,000 a second on it lingers
/// [`FULL_AFTER`], as before: a batch of [`LINGER_BATCH`] still gives way between its records
/// (below [`GIVE_WAY_BELOW`]), and under full load the batches are as large as ever (capping
/// them at [`LINGER_BATCH`] cost 7-12% of the maximum rate in commits).
const LINGER_BATCH: usize = 96;
/// See [`LINGER_BATCH`].
const FULL_AFTER: Duration = Duration::from_millis(10);

/// Records in a batch past which the writer lingers [`BUSY_LINGER`].
const BUSY_BATCH: usize = 16;

/// An idle wait shorter than this for a batch's first op also makes the writer linger
/// [`BUSY_LINGER`] next: otherwise a steady moderate rate (1,000 requests a second) can go on
/// in batches of a few records, each [`SETTLE_LINGER`] too short to reach [`BUSY_BATCH`]. A
/// longer one makes it linger [`SETTLE_LINGER`] at most, whatever came before.
const BUSY_GAP: Duration = Duration::from_millis(10);

/// The batches in which the writer gives way between records (see [`give_way`]), by how many
/// ops they hold. A batch of a few (sparse requests) is over long before the scheduler's slice,
/// and is written at once as before; from [`GIVE_WAY_BELOW`] on the writer is behind, and must
/// keep its share of the CPU to catch up.
const GIVE_WAY_FROM: usize = 8;
/// See [`GIVE_WAY_FROM`].
const GIVE_WAY_BELOW: usize = 128;

thread_local! {
    /// Whether this thread gives way between records: set by the writer for each batch.
    static GIVING_WAY: Cell<bool> = const { Cell::new(false) };
}

/// Between two records of a batch, lets the CPU go to a thread that is waiting for it (on one
/// CPU, the runtime serving requests); sinks call it between the records they write. It gives
/// way only in a batch long enough to hold the CPU for a while, and not once the writer is
/// behind (see [`GIVE_WAY_FROM`]). Without it, a batch of records (about 1 ms of CPU at 5,000
/// requests a second) ran on for the scheduler's whole slice while requests waited: p99 at
/// 5,000 req/s 1.3-1.9 ms, against 1.0-1.6 ms giving way (medians 1.70 and 1.33 ms of seven
/// alternating pairs, bench/README.md). A writer that gave way whatever its backlog, under a
/// load the CPU cannot serve, never caught up: its queue grew to 226 MB in 6 s at full load.
pub(crate) fn give_way() {
    if GIVING_WAY.with(Cell::get) {
        std::thread::yield_now();
    }
}

/// How long the writer may hold back a journaled pending record before writing it: a request
/// that ends sooner is written once, in its settled form, instead of twice. Pending records
/// show in the store this much later (the ledger's own queries flush them first).
const OPEN_HOLD: Duration = Duration::from_secs(1);

/// How often the writer looks for held records whose hold is over.
const HOLD_SWEEP: Duration = Duration::from_millis(100);

/// Writes that fail are tried this many times before the batch is given up (and logged).
const WRITE_TRIES: u32 = 3;

/// The usage ledger: cheap to clone; every clone feeds the same writer.
#[derive(Clone)]
pub struct Ledger {
    inner: Arc<Inner>,
}

struct Inner {
    sink: Arc<dyn LedgerSink>,
    instance: String,
    durable: bool,
    ops: Arc<OpQueue>,
    hooks: Arc<Hooks>,
    /// Stops the retention thread when the ledger goes (its receiver sees the sender dropped).
    retention: Mutex<Option<Sender<()>>>,
    /// The writer thread, joined when the ledger goes.
    writer: Option<JoinHandle<()>>,
}

impl Drop for Inner {
    /// The writer drains what is queued and ends, and the ledger waits for it: a process that
    /// returns from `main` right after dropping its ledger would otherwise end the writer
    /// before the sink's own drop (the SQLite sink removes its spent journal and lock there).
    fn drop(&mut self) {
        self.ops.close();
        if let Some(writer) = self.writer.take()
            && writer.thread().id() != std::thread::current().id()
            && writer.join().is_err()
        {
            tracing::error!("the usage ledger's writer thread panicked");
        }
    }
}

type HookList = Arc<RwLock<Vec<RequestEndHook>>>;

#[derive(Default)]
struct Hooks {
    list: HookList,
    any: AtomicBool,
    queue: OnceLock<Sender<UsageRecord>>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("sink", &self.inner.sink)
            .field("instance", &self.inner.instance)
            .finish_non_exhaustive()
    }
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger::memory()
    }
}

impl Ledger {
    /// A ledger kept in memory.
    pub fn memory() -> Self {
        Ledger::new(Arc::new(MemorySink::new()), new_instance_id())
    }

    /// A ledger over `sink`, writing as `instance` (an id unique to this process).
    pub fn new(sink: Arc<dyn LedgerSink>, instance: String) -> Self {
        let ops = Arc::new(OpQueue::new());
        let hooks = Arc::new(Hooks::default());
        let writer_ops = ops.clone();
        let writer_sink = sink.clone();
        let writer_hooks = hooks.clone();
        let spawned = std::thread::Builder::new()
            .name("ogw-ledger".into())
            .spawn(move || write_loop(&writer_ops, writer_sink.as_ref(), &writer_hooks));
        let writer = match spawned {
            Ok(writer) => Some(writer),
            Err(e) => {
                // Without a writer every open fails with the queue closed, so requests are
                // refused rather than served unrecorded.
                tracing::error!(error = %e, "cannot start the usage ledger's writer thread");
                ops.close();
                None
            }
        };
        Ledger {
            inner: Arc::new(Inner {
                durable: sink.durable(),
                sink,
                instance,
                ops,
                hooks,
                retention: Mutex::new(None),
                writer,
            }),
        }
    }

    /// The id this ledger writes its records under.
    pub fn instance(&self) -> &str {
        &self.inner.instance
    }

    /// The store behind the ledger.
    pub fn sink(&self) -> &Arc<dyn LedgerSink> {
        &self.inner.sink
    }

    /// Marks records left pending by ledgers that are gone (a killed process) as interrupted.
    pub fn recover(&self) -> Result<u64, LedgerError> {
        self.inner.sink.recover(&self.inner.instance)
    }

    fn send(&self, op: Op) -> Result<(), LedgerError> {
        self.inner
            .ops
            .push(op)
            .map_err(|_| LedgerError("the ledger's writer has stopped".into()))
    }

    /// Stores a newly accepted (pending) record. With a durable store the record survives the
    /// process when this returns (journaled, or else written: this waits for the write), so a
    /// request that goes upstream is never missing from the ledger.
    pub async fn open(&self, record: UsageRecord) -> Result<(), LedgerError> {
        if !self.inner.durable {
            return self.send(Op::Write(Box::new(record), None));
        }
        if self.inner.sink.journal(&record)? {
            return self.send(Op::Open(Box::new(record)));
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let ack: Ack = Box::new(move |result| {
            let _ = tx.send(result);
        });
        self.send(Op::Write(Box::new(record), Some(ack)))?;
        rx.await
            .unwrap_or_else(|_| Err(LedgerError("the ledger's writer has stopped".into())))
    }

    /// Stores a record's final form, replacing its pending one; does not wait.
    pub fn settle(&self, record: UsageRecord) {
        let id = record.id.clone();
        if let Err(e) = self.send(Op::Write(Box::new(record), None)) {
            tracing::error!(request_id = %id, error = %e, "a settled record could not be queued");
        }
    }

    /// [`Ledger::settle`], and the request's log line: written by the writer thread, so that
    /// formatting and writing it (as much work as the rest of settling) is not on the path of
    /// the answer, and the lines of a batch go out together.
    pub(crate) fn settle_logged(&self, record: UsageRecord, key_label: Option<String>) {
        if let Err(Op::Settle(record, key_label)) =
            self.inner.ops.push(Op::Settle(Box::new(record), key_label))
        {
            // The line at least: the writer that would have written it is gone.
            request_log::log_settled(&record, key_label.as_deref());
            tracing::error!(
                request_id = %record.id,
                "a settled record could not be queued: the ledger's writer has stopped"
            );
        }
    }

    /// Queues the bodies of a request whose record was queued before (`server.log_bodies`).
    pub fn store_bodies(&self, bodies: RequestBodies) {
        let id = bodies.id.clone();
        if let Err(e) = self.send(Op::Bodies(Box::new(bodies))) {
            tracing::error!(request_id = %id, error = %e, "request bodies could not be queued");
        }
    }

    /// The record with this id, after a flush.
    pub fn record(&self, id: &str) -> Result<Option<UsageRecord>, LedgerError> {
        self.flush();
        self.inner.sink.record(id)
    }

    /// The bodies kept for a request (only with `server.log_bodies`), after a flush.
    pub fn bodies(&self, id: &str) -> Result<Option<RequestBodies>, LedgerError> {
        self.flush();
        self.inner.sink.bodies(id)
    }

    /// Queues the deletion of every record (and its bodies) older than `days` days.
    pub fn purge_older_than(&self, days: u32) {
        let cutoff = super::now_ms().saturating_sub(i64::from(days) * 86_400_000);
        if let Err(e) = self.send(Op::Purge(cutoff)) {
            tracing::error!(error = %e, "the ledger's retention could not be queued");
        }
    }

    /// Keeps records for `days` days: deletes older ones now (queued before any later write,
    /// so a [`Ledger::flush`] after this call sees them gone) and then every hour, on a thread
    /// that ends with the ledger. Calling it again replaces the previous period.
    pub fn set_retention(&self, days: u32) {
        self.purge_older_than(days);
        let (stop, stopped) = mpsc::channel::<()>();
        let ledger = Arc::downgrade(&self.inner);
        let spawned = std::thread::Builder::new()
            .name("ogw-retention".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(PURGE_INTERVAL)
                {
                    match ledger.upgrade() {
                        Some(inner) => Ledger { inner }.purge_older_than(days),
                        None => break,
                    }
                }
            });
        match spawned {
            Ok(_) => {
                *self
                    .inner
                    .retention
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(stop);
            }
            Err(e) => tracing::error!(error = %e, "cannot start the ledger's retention thread"),
        }
    }

    /// Waits until everything queued so far is written (blocking the thread).
    pub fn flush(&self) {
        let (tx, rx) = mpsc::channel();
        let ack: Ack = Box::new(move |_| {
            let _ = tx.send(());
        });
        if self.send(Op::Flush(ack)).is_ok() {
            let _ = rx.recv();
        }
    }

    /// Waits until everything queued so far is written.
    pub async fn flush_async(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let ack: Ack = Box::new(move |_| {
            let _ = tx.send(());
        });
        if self.send(Op::Flush(ack)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Totals of the settled and pending records a query covers, after a flush.
    pub fn totals(&self, query: &UsageQuery) -> Result<Vec<UsageTotals>, LedgerError> {
        self.flush();
        self.inner.sink.totals(query)
    }

    /// Records a filter covers, newest first, at most `limit`, after a flush.
    pub fn records(
        &self,
        filter: &UsageFilter,
        limit: usize,
    ) -> Result<Vec<UsageRecord>, LedgerError> {
        self.flush();
        self.inner.sink.records(filter, limit)
    }

    /// Calls `hook` with every record once it is settled and written, on a thread of the
    /// ledger's own: a slow hook delays other hooks, never a request. A hook that panics is
    /// logged and kept.
    pub fn on_request_end(&self, hook: RequestEndHook) {
        let hooks = &self.inner.hooks;
        hooks
            .list
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(hook);
        hooks.queue.get_or_init(|| {
            let (tx, rx) = mpsc::channel::<UsageRecord>();
            // The hook thread holds the list only, so it ends when the ledger's queue closes.
            let runner = hooks.list.clone();
            let spawned = std::thread::Builder::new()
                .name("ogw-hooks".into())
                .spawn(move || run_hooks(rx, &runner));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start the request-end hook thread");
            }
            tx
        });
        hooks.any.store(true, Ordering::Release);
    }
}

/// A random id for one ledger instance (one process), e.g. `inst_3f9a…`.
pub fn new_instance_id() -> String {
    format!("inst_{:032x}", fastrand::u128(..))
}

fn write_loop(queue: &OpQueue, sink: &dyn LedgerSink, hooks: &Hooks) {
    let mut ops = Vec::new();
    // Journaled pending records not written yet, by id, with when they were opened.
    let mut held: HashMap<String, (Box<UsageRecord>, Instant)> = HashMap::new();
    let mut next_sweep = Instant::now() + HOLD_SWEEP;
    let mut linger = SETTLE_LINGER;
    loop {
        let Taken { open, idle } =
            queue.take(&mut ops, (!held.is_empty()).then_some(next_sweep), linger);
        let taken = ops.len();
        GIVING_WAY.with(|giving_way| {
            giving_way.set((GIVE_WAY_FROM..GIVE_WAY_BELOW).contains(&taken));
        });
        // A sweep of held records that took no op says nothing about the rate.
        if taken > 0 {
            linger = if taken >= BUSY_BATCH || idle < BUSY_GAP {
                BUSY_LINGER
            } else {
                SETTLE_LINGER
            };
        }
        let mut queued = ops.drain(..).peekable();
        loop {
            let mut batch: Vec<UsageRecord> = Vec::new();
            let mut bodies: Vec<RequestBodies> = Vec::new();
            let mut purge: Option<i64> = None;
            let mut acks: Vec<Ack> = Vec::new();
            for op in queued.by_ref() {
                match op {
                    Op::Open(record) => {
                        held.insert(record.id.clone(), (record, Instant::now()));
                    }
                    Op::Write(record, ack) => {
                        // Its pending form, if still held, is never written: this replaces it.
                        if record.status != RecordStatus::Pending {
                            held.remove(&record.id);
                        }
                        batch.push(*record);
                        acks.extend(ack);
                    }
                    Op::Settle(record, key_label) => {
                        request_log::log_settled(&record, key_label.as_deref());
                        give_way();
                        if record.status != RecordStatus::Pending {
                            held.remove(&record.id);
                        }
                        batch.push(*record);
                    }
                    Op::Bodies(b) => {
                        // Bodies are stored beside a record that exists.
                        if let Some((record, _)) = held.remove(&b.id) {
                            batch.push(*record);
                        }
                        bodies.push(*b);
                    }
                    Op::Purge(cutoff) => purge = Some(cutoff),
                    Op::Flush(ack) => {
                        batch.extend(held.drain().map(|(_, (record, _))| *record));
                        acks.push(ack);
                    }
                }
                // A purge ends the batch: what was queued after it must survive it.
                if batch.len() >= MAX_BATCH || purge.is_some() {
                    break;
                }
            }
            let last = queued.peek().is_none();
            if last {
                let now = Instant::now();
                if !open {
                    batch.extend(held.drain().map(|(_, (record, _))| *record));
                } else if now >= next_sweep {
                    next_sweep = now + HOLD_SWEEP;
                    let expired =
                        held.extract_if(|_, (_, opened)| now.duration_since(*opened) >= OPEN_HOLD);
                    batch.extend(expired.map(|(_, (record, _))| *record));
                }
            }
            if batch.is_empty() && bodies.is_empty() && purge.is_none() && acks.is_empty() {
                break;
            }
            commit(sink, hooks, batch, &bodies, purge, acks);
            if last {
                break;
            }
        }
        if !open {
            return;
        }
    }
}

/// Writes one batch (one transaction in SQLite), then answers whoever waits on it and hands
/// the settled records to the hooks.
fn commit(
    sink: &dyn LedgerSink,
    hooks: &Hooks,
    batch: Vec<UsageRecord>,
    bodies: &[RequestBodies],
    purge: Option<i64>,
    acks: Vec<Ack>,
) {
    let result = write_with_retries(sink, &batch);
    if let Err(e) = &result {
        let ids: Vec<&str> = batch.iter().map(|r| r.id.as_str()).collect();
        tracing::error!(error = %e, records = ?ids, "usage records could not be written");
    }
    if !bodies.is_empty()
        && let Err(e) = sink.write_bodies(bodies)
    {
        let ids: Vec<&str> = bodies.iter().map(|b| b.id.as_str()).collect();
        tracing::error!(error = %e, records = ?ids, "request bodies could not be written");
    }
    if let Some(cutoff) = purge {
        match sink.purge_before(cutoff) {
            Ok(0) => {}
            Ok(n) => tracing::info!(records = n, "ledger retention deleted expired records"),
            Err(e) => tracing::error!(error = %e, "ledger retention failed"),
        }
    }
    for ack in acks {
        ack(result.clone());
    }
    sink.maintain();
    if hooks.any.load(Ordering::Acquire)
        && let Some(queue) = hooks.queue.get()
    {
        for record in batch {
            if record.status != RecordStatus::Pending {
                let _ = queue.send(record);
            }
        }
    }
}

fn write_with_retries(sink: &dyn LedgerSink, batch: &[UsageRecord]) -> Result<(), LedgerError> {
    if batch.is_empty() {
        return Ok(());
    }
    let mut tries = 0;
    loop {
        tries += 1;
        match sink.write(batch) {
            Ok(()) => return Ok(()),
            Err(e) if tries >= WRITE_TRIES => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, tries, "usage ledger write failed; retrying");
                std::thread::sleep(Duration::from_millis(50 * u64::from(tries)));
            }
        }
    }
}

fn run_hooks(rx: Receiver<UsageRecord>, hooks: &HookList) {
    while let Ok(record) = rx.recv() {
        let list = hooks.read().unwrap_or_else(PoisonError::into_inner).clone();
        for hook in list {
            if catch_unwind(AssertUnwindSafe(|| hook(&record))).is_err() {
                tracing::error!(request_id = %record.id, "a request-end hook panicked");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounting::query::aggregate;

    /// A durable sink that journals and keeps every batch it was asked to write.
    #[derive(Debug, Default)]
    struct Recording {
        batches: Mutex<Vec<Vec<UsageRecord>>>,
        journaled: Mutex<Vec<String>>,
    }

    impl Recording {
        fn written(&self) -> Vec<(String, RecordStatus)> {
            let batches = self.batches.lock().unwrap_or_else(PoisonError::into_inner);
            batches
                .iter()
                .flatten()
                .map(|r| (r.id.clone(), r.status))
                .collect()
        }
    }

    impl LedgerSink for Recording {
        fn write(&self, batch: &[UsageRecord]) -> Result<(), LedgerError> {
            self.batches
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(batch.to_vec());
            Ok(())
        }
        fn journal(&self, record: &UsageRecord) -> Result<bool, LedgerError> {
            self.journaled
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(record.id.clone());
            Ok(true)
        }
        fn durable(&self) -> bool {
            true
        }
        fn recover(&self, _: &str) -> Result<u64, LedgerError> {
            Ok(0)
        }
        fn records(&self, _: &UsageFilter, _: usize) -> Result<Vec<UsageRecord>, LedgerError> {
            Ok(Vec::new())
        }
        fn totals(&self, query: &UsageQuery) -> Result<Vec<UsageTotals>, LedgerError> {
            let batches = self.batches.lock().unwrap_or_else(PoisonError::into_inner);
            Ok(aggregate(batches.iter().flatten(), query))
        }
    }

    fn pending(id: &str) -> UsageRecord {
        UsageRecord::pending(id, "i", 0, "chat.completions", "m")
    }

    fn settled(id: &str) -> UsageRecord {
        UsageRecord {
            status: RecordStatus::Ok,
            ..pending(id)
        }
    }

    #[tokio::test]
    async fn a_journaled_open_is_held_back_and_written_once_settled_or_after_its_hold() {
        let sink = Arc::new(Recording::default());
        let ledger = Ledger::new(sink.clone(), "i".into());

        // Journaled, so the open returns at once; settled before its hold ends: one write.
        ledger.open(pending("quick")).await.unwrap();
        ledger.settle(settled("quick"));
        ledger.flush_async().await;
        assert_eq!(sink.written(), [("quick".into(), RecordStatus::Ok)]);

        // A flush writes what is held (queries through the ledger see pending records).
        ledger.open(pending("flushed")).await.unwrap();
        ledger.flush_async().await;
        assert_eq!(
            sink.written().last(),
            Some(&("flushed".into(), RecordStatus::Pending))
        );

        // Without a flush, a record still open after its hold is written pending.
        ledger.open(pending("slow")).await.unwrap();
        let opened = Instant::now();
        let written_pending = || {
            sink.written()
                .contains(&("slow".into(), RecordStatus::Pending))
        };
        while !written_pending() && opened.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(written_pending(), "written within 5 s");
        assert!(opened.elapsed() >= OPEN_HOLD, "not before its hold");
        ledger.settle(settled("slow"));
        ledger.flush_async().await;
        assert_eq!(
            sink.written().last(),
            Some(&("slow".into(), RecordStatus::Ok))
        );
        assert_eq!(
            *sink
                .journaled
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
            ["quick", "flushed", "slow"]
        );

        // What is held when the ledger goes is written before its writer ends.
        ledger.open(pending("last")).await.unwrap();
        drop(ledger);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !sink
            .written()
            .contains(&("last".into(), RecordStatus::Pending))
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            sink.written()
                .contains(&("last".into(), RecordStatus::Pending))
        );
    }
}
