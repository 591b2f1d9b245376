//! The registry on disk: one redb file under the data directory.
//!
//! Tables: `clients_by_slot` (registration-order slot -> client record, see
//! [`super::codec`]), `latest` (state key -> sequence number and the `SC_EVENT` bytes),
//! `event_log` (sequence number -> `SC_EVENT` bytes, every acknowledged event still retained),
//! `cursors_by_slot` (client slot -> where its cursor stands, for clients not at the floor),
//! `meta` (`next_seq`, `cursor_floor`). Each commit is durable (fsync) before it returns; the
//! service shares one commit among many writes. A store of the first layout (`clients`, keyed by
//! address) is moved to `clients_by_slot`, and the cursors of the layout before `states_from`
//! (`cursors`) to `cursors_by_slot`, when it is opened.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use hashbrown::{HashMap, HashSet};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::codec;
use super::cursor::Resume;
use super::record::{ClientId, ClientRecord, PublishedEvent};
use super::state::{Dirty, StoredCursors};
use super::state_key;
use crate::protocol::{Event, Limits};

/// Clients keyed by a slot number handed out in registration order, so that a registration
/// storm appends at the right edge of the B-tree instead of rewriting pages all over it.
const CLIENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("clients_by_slot");
/// The first layout's clients table, keyed by `ip:port`, JSON values: moved to [`CLIENTS`] on open.
const LEGACY_CLIENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("clients");
const LATEST: TableDefinition<&str, (u64, &[u8])> = TableDefinition::new("latest");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Every acknowledged event still retained, by sequence number: the `SC_EVENT` bytes.
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("event_log");
/// Cursors of the clients not at the floor, by client slot: (`from`, `states_from`), see
/// [`Resume`].
const CURSORS: TableDefinition<u64, (u64, Option<u64>)> = TableDefinition::new("cursors_by_slot");
/// The cursors of the layout before `states_from`: (`from`, latest states pending), moved to
/// [`CURSORS`] on open. A pending flag becomes "every latest state", what it meant.
const LEGACY_CURSORS: TableDefinition<u64, (u64, bool)> = TableDefinition::new("cursors");
const NEXT_SEQ: &str = "next_seq";
const CURSOR_FLOOR: &str = "cursor_floor";
/// Log entries one commit deletes at most beyond twice what it appends, so that retention
/// work per commit stays bounded.
const TRIM_STEP: usize = 4096;
/// Entries every cursor has passed that wait for a commit to delete them together: deleting
/// a run of them at once rewrites far fewer pages than a few in every commit. Entries over a
/// retention bound go at once.
const TRIM_MIN: u64 = 512;
/// redb's page cache. The registry is read once at start-up and then only written, so a
/// small cache keeps idle memory per registered client low without slowing commits.
const STORE_CACHE_BYTES: usize = 4 << 20;
/// The store's file name inside the data directory.
pub(crate) const STORE_FILE: &str = "registry.redb";

/// Why the store cannot be used; every variant names the path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Another process holds the store (the active instance, for a standby).
    #[error("{path}: the store is held by another crnpd process")]
    Locked {
        /// The store file.
        path: PathBuf,
    },
    /// The data directory cannot be created or used.
    #[error("{path}: cannot use the data directory: {source}")]
    Directory {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a healthy redb database.
    #[error(
        "{path}: the store is corrupt or unreadable ({cause}); restore it from a backup or move it aside"
    )]
    Corrupt {
        /// The store file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        cause: Damage,
    },
    /// A read or write failed (disk full, I/O error).
    #[error("{path}: store I/O failed: {source}")]
    Io {
        /// The store file.
        path: PathBuf,
        /// What redb (or the file system) said.
        source: redb::Error,
    },
    /// An earlier commit failed and the store could not be reopened since; the next commit
    /// tries again.
    #[error("{path}: the store is closed after an I/O error and could not be reopened yet")]
    Closed {
        /// The store file.
        path: PathBuf,
    },
}

/// What is wrong with a store file that is not a healthy store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Damage {
    /// redb refused the file (not a redb file, a bad header, a failed integrity check).
    #[error("{0}")]
    Redb(#[source] redb::Error),
    /// The file is empty.
    #[error("the file is empty (0 bytes), so it holds no registry")]
    Empty,
    /// redb gave up reading the file (it panicked; the panic was caught).
    #[error("redb could not read the file")]
    Unreadable,
    /// A record does not decode: which one, and what the decoder found.
    #[error("{0}")]
    Record(String),
}

/// What the store holds, as loaded at start-up.
#[derive(Debug)]
pub struct StoreContents {
    /// Registered clients.
    pub clients: Vec<ClientRecord>,
    /// The latest event of each type.
    pub latest: Vec<Arc<PublishedEvent>>,
    /// The next sequence number.
    pub next_seq: u64,
    /// The clients' cursors.
    pub cursors: StoredCursors,
    /// What the event log holds.
    pub log: LogStats,
}

/// How much of the event log is kept: entries every cursor has passed go at once, and the
/// oldest go beyond either bound (`--log-retention-events`, `--log-retention-bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Entries at most.
    pub max_events: u64,
    /// Bytes of `SC_EVENT` documents at most.
    pub max_bytes: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_events: 1_000_000,
            max_bytes: 256 << 20,
        }
    }
}

/// The size of the event log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogStats {
    /// Entries retained.
    pub entries: u64,
    /// Bytes of their `SC_EVENT` documents.
    pub bytes: u64,
    /// The first retained sequence number; `None` when empty.
    pub oldest: Option<u64>,
}

/// One retained log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Its sequence number.
    pub seq: u64,
    /// The `SC_EVENT` document, as delivered.
    pub bytes: Bytes,
}

/// The open store. Only one process may hold it.
pub struct Store {
    /// `None` after a failed commit whose reopen failed too (see [`Store::reopen`]).
    db: Option<Database>,
    path: PathBuf,
    /// Where each stored client lives in the `clients` table (filled by [`Store::load`]).
    slots: HashMap<ClientId, u64>,
    /// The slot the next new client gets.
    next_slot: u64,
    /// The `next_seq` on disk (filled by [`Store::load`]): a commit writes it only when it changed.
    stored_next_seq: Option<u64>,
    /// The encoding buffer of client records, reused from one record to the next.
    scratch: Vec<u8>,
    /// What the event log holds (filled by [`Store::load`], kept by each commit).
    log: LogStats,
    retention: Retention,
    /// The cursor floor on disk: a commit writes it only when it changed.
    stored_floor: Option<u64>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (creating if needed) the store in `data_dir`, checking its integrity.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::Directory {
            path: data_dir.to_owned(),
            source,
        })?;
        let path = data_dir.join(STORE_FILE);
        check_access(data_dir, &path)?;
        let store = Store {
            db: Some(open_database(&path)?),
            path,
            slots: HashMap::new(),
            next_slot: 0,
            stored_next_seq: None,
            scratch: Vec::new(),
            log: LogStats::default(),
            retention: Retention::default(),
            stored_floor: None,
        };
        store.create_tables()?;
        let moved = store.migrate_legacy_clients()?;
        if moved > 0 {
            tracing::info!(store = %store.path.display(), clients = moved, "moved the clients of the first store layout to clients_by_slot");
        }
        if let Some(moved) = store.migrate_legacy_cursors()? {
            tracing::info!(store = %store.path.display(), cursors = moved, "moved the cursors of the earlier store layout to cursors_by_slot");
        }
        Ok(store)
    }

    /// Opens the store in `data_dir` for an operator's command: it must exist already, so a
    /// mistyped directory is an error rather than a new, empty store.
    pub fn open_existing(data_dir: &Path) -> Result<Store, StoreError> {
        let path = data_dir.join(STORE_FILE);
        if let Err(source) = std::fs::metadata(&path) {
            return Err(StoreError::Directory { path, source });
        }
        Store::open(data_dir)
    }

    /// Closes and reopens the file after a failed commit: redb refuses every later write
    /// until then. On success the store is usable again (redb repairs it on open); otherwise
    /// it stays closed, and the next commit tries again.
    pub fn reopen(&mut self) -> Result<(), StoreError> {
        // Dropping the database closes the file and releases its lock.
        self.db = None;
        self.db = Some(open_database(&self.path)?);
        Ok(())
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sets how much of the event log is kept; commits apply it from the next on.
    pub fn set_retention(&mut self, retention: Retention) {
        self.retention = retention;
    }

    /// What the event log holds now.
    pub fn log_stats(&self) -> LogStats {
        self.log
    }

    /// Up to `limit` retained log entries from `from` on, in sequence order.
    pub fn read_log(&self, from: u64, limit: usize) -> Result<Vec<LogEntry>, StoreError> {
        let txn = self.db()?.begin_read().map_err(|e| self.io(e))?;
        let log = txn.open_table(LOG).map_err(|e| self.io(e))?;
        let mut entries = Vec::new();
        for row in log.range(from..).map_err(|e| self.io(e))?.take(limit) {
            let (seq, bytes) = row.map_err(|e| self.io(e))?;
            entries.push(LogEntry {
                seq: seq.value(),
                bytes: Bytes::copy_from_slice(bytes.value()),
            });
        }
        Ok(entries)
    }

    /// Every retained log entry from `from` on, parsed, for a start's recovery; a damaged
    /// entry is reported, not skipped.
    pub fn read_log_events(&self, from: u64) -> Result<Vec<Arc<PublishedEvent>>, StoreError> {
        let now = Instant::now();
        self.read_log(from, usize::MAX)?
            .into_iter()
            .map(|entry| {
                let event = Event::parse(&entry.bytes, &unlimited()).map_err(|e| {
                    self.corrupt(Damage::Record(format!("log entry {}: {e}", entry.seq)))
                })?;
                Ok(Arc::new(PublishedEvent {
                    seq: entry.seq,
                    state_key: state_key(&event),
                    event,
                    bytes: entry.bytes,
                    accepted_at: now,
                }))
            })
            .collect()
    }

    fn db(&self) -> Result<&Database, StoreError> {
        self.db.as_ref().ok_or_else(|| StoreError::Closed {
            path: self.path.clone(),
        })
    }

    fn create_tables(&self) -> Result<(), StoreError> {
        let txn = self.db()?.begin_write().map_err(|e| self.io(e))?;
        txn.open_table(CLIENTS).map_err(|e| self.io(e))?;
        txn.open_table(LATEST).map_err(|e| self.io(e))?;
        txn.open_table(META).map_err(|e| self.io(e))?;
        txn.open_table(LOG).map_err(|e| self.io(e))?;
        txn.open_table(CURSORS).map_err(|e| self.io(e))?;
        txn.commit().map_err(|e| self.io(e))
    }

    /// Whether the file has `table` (an earlier layout's, to be moved).
    fn holds<K: redb::Key + 'static, V: redb::Value + 'static>(
        &self,
        table: TableDefinition<K, V>,
    ) -> Result<bool, StoreError> {
        match self
            .db()?
            .begin_read()
            .map_err(|e| self.io(e))?
            .open_table(table)
        {
            Ok(_) => Ok(true),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(false),
            Err(e) => Err(self.corrupt(Damage::Redb(e.into()))),
        }
    }

    /// Moves the clients of the first layout (table `clients`, keyed by address) into
    /// `clients_by_slot` and deletes the old table, in one transaction; returns how many moved.
    /// A client present in both keeps its `clients_by_slot` record.
    fn migrate_legacy_clients(&self) -> Result<usize, StoreError> {
        if !self.holds(LEGACY_CLIENTS)? {
            return Ok(0);
        }
        let db = self.db()?;
        let txn = db.begin_write().map_err(|e| self.io(e))?;
        let mut moved = 0;
        {
            let mut clients = txn.open_table(CLIENTS).map_err(|e| self.io(e))?;
            let mut present = HashSet::new();
            let mut next_slot = 0;
            for row in clients.iter().map_err(|e| self.io(e))? {
                let (key, value) = row.map_err(|e| self.io(e))?;
                let record = codec::decode(value.value()).map_err(|e| {
                    self.corrupt(Damage::Record(format!(
                        "client in slot {}: {e}",
                        key.value()
                    )))
                })?;
                present.insert(record.id);
                next_slot = next_slot.max(key.value() + 1);
            }
            let legacy = txn.open_table(LEGACY_CLIENTS).map_err(|e| self.io(e))?;
            let mut value = Vec::new();
            for row in legacy.iter().map_err(|e| self.io(e))? {
                let (key, stored) = row.map_err(|e| self.io(e))?;
                let record = codec::decode_legacy(key.value(), stored.value())
                    .map_err(|e| self.corrupt(Damage::Record(e)))?;
                if !present.insert(record.id) {
                    continue;
                }
                value.clear();
                codec::encode(
                    record.id,
                    &record.types,
                    record.registered_at_ms,
                    &mut value,
                );
                clients
                    .insert(next_slot, value.as_slice())
                    .map_err(|e| self.io(e))?;
                next_slot += 1;
                moved += 1;
            }
        }
        txn.delete_table(LEGACY_CLIENTS).map_err(|e| self.io(e))?;
        txn.commit().map_err(|e| self.io(e))?;
        Ok(moved)
    }

    /// Moves the cursor rows of the layout before `states_from` (table `cursors`) into
    /// `cursors_by_slot` and deletes the old table, in one transaction; returns how many moved,
    /// `None` when there was no old table. A pending latest-state flag becomes
    /// `states_from: Some(0)`: every latest state of the client's types, as before.
    fn migrate_legacy_cursors(&self) -> Result<Option<usize>, StoreError> {
        if !self.holds(LEGACY_CURSORS)? {
            return Ok(None);
        }
        let db = self.db()?;
        let txn = db.begin_write().map_err(|e| self.io(e))?;
        let mut moved = 0;
        {
            let mut cursors = txn.open_table(CURSORS).map_err(|e| self.io(e))?;
            let legacy = txn.open_table(LEGACY_CURSORS).map_err(|e| self.io(e))?;
            for row in legacy.iter().map_err(|e| self.io(e))? {
                let (slot, value) = row.map_err(|e| self.io(e))?;
                let (from, states_pending) = value.value();
                cursors
                    .insert(slot.value(), (from, states_pending.then_some(0)))
                    .map_err(|e| self.io(e))?;
                moved += 1;
            }
        }
        txn.delete_table(LEGACY_CURSORS).map_err(|e| self.io(e))?;
        txn.commit().map_err(|e| self.io(e))?;
        Ok(Some(moved))
    }

    /// Reads everything back; events are re-parsed so a damaged record is reported, not skipped.
    pub fn load(&mut self) -> Result<StoreContents, StoreError> {
        let txn = self.db()?.begin_read().map_err(|e| self.io(e))?;
        let clients_table = txn.open_table(CLIENTS).map_err(|e| self.io(e))?;
        let mut clients = Vec::new();
        let mut slots = HashMap::new();
        for row in clients_table.iter().map_err(|e| self.io(e))? {
            let (key, value) = row.map_err(|e| self.io(e))?;
            let slot = key.value();
            let record = codec::decode(value.value())
                .map_err(|e| self.corrupt(Damage::Record(format!("client in slot {slot}: {e}"))))?;
            let id = record.id;
            if slots.insert(id, slot).is_some() {
                return Err(self.corrupt(Damage::Record(format!("client {id} is stored twice"))));
            }
            clients.push(ClientRecord {
                id,
                types: record.types.into(),
                registered_at_ms: record.registered_at_ms,
                generation: 0,
            });
        }
        let latest_table = txn.open_table(LATEST).map_err(|e| self.io(e))?;
        let mut latest = Vec::new();
        let now = Instant::now();
        let limits = unlimited();
        for row in latest_table.iter().map_err(|e| self.io(e))? {
            let (key, value) = row.map_err(|e| self.io(e))?;
            let (seq, xml) = value.value();
            let event = Event::parse(xml, &limits).map_err(|e| {
                self.corrupt(Damage::Record(format!(
                    "latest event {:?}: {e}",
                    key.value()
                )))
            })?;
            latest.push(Arc::new(PublishedEvent {
                seq,
                state_key: state_key(&event),
                event,
                bytes: Bytes::copy_from_slice(xml),
                accepted_at: now,
            }));
        }
        let meta = txn.open_table(META).map_err(|e| self.io(e))?;
        let stored_next_seq = meta
            .get(NEXT_SEQ)
            .map_err(|e| self.io(e))?
            .map(|v| v.value());
        let floor = meta
            .get(CURSOR_FLOOR)
            .map_err(|e| self.io(e))?
            .map(|v| v.value());
        let by_slot: HashMap<u64, ClientId> = slots.iter().map(|(id, slot)| (*slot, *id)).collect();
        let cursor_table = txn.open_table(CURSORS).map_err(|e| self.io(e))?;
        let mut rows = Vec::new();
        for row in cursor_table.iter().map_err(|e| self.io(e))? {
            let (slot, value) = row.map_err(|e| self.io(e))?;
            let (from, states_from) = value.value();
            let Some(id) = by_slot.get(&slot.value()) else {
                return Err(self.corrupt(Damage::Record(format!(
                    "cursor of slot {}, which holds no client",
                    slot.value()
                ))));
            };
            rows.push((*id, Resume { from, states_from }));
        }
        let log_table = txn.open_table(LOG).map_err(|e| self.io(e))?;
        let mut log = LogStats::default();
        for row in log_table.iter().map_err(|e| self.io(e))? {
            let (seq, bytes) = row.map_err(|e| self.io(e))?;
            log.oldest.get_or_insert(seq.value());
            log.entries += 1;
            log.bytes += bytes.value().len() as u64;
        }
        self.next_slot = slots.values().max().map_or(0, |slot| slot + 1);
        self.slots = slots;
        self.stored_next_seq = stored_next_seq;
        self.stored_floor = floor;
        self.log = log;
        let next_seq = stored_next_seq.unwrap_or(0);
        Ok(StoreContents {
            clients,
            latest,
            next_seq,
            cursors: StoredCursors { floor, rows },
            log,
        })
    }

    /// Writes one batch of changes in one durable transaction, and deletes log entries past
    /// retention (a bounded number per commit).
    /// If an earlier failure left the store closed, it is reopened first.
    pub fn commit(&mut self, dirty: &Dirty) -> Result<(), StoreError> {
        if self.db.is_none() {
            self.reopen()?;
        }
        // Unknown until this commit succeeds: a failed commit may or may not have reached the
        // disk, so the next one writes `next_seq` and the floor again.
        let stored_next_seq = self.stored_next_seq.take();
        let stored_floor = self.stored_floor.take();
        let txn = self.db()?.begin_write().map_err(|e| self.io(e))?;
        // Slot changes take effect only once the commit has: a failed commit leaves none.
        let mut moved: Vec<(ClientId, Option<u64>)> = Vec::new();
        let mut next_slot = self.next_slot;
        let log;
        {
            let mut clients = txn.open_table(CLIENTS).map_err(|e| self.io(e))?;
            for (id, record) in &dirty.clients {
                match record {
                    Some(record) => {
                        let slot = match self.slots.get(id) {
                            Some(slot) => *slot,
                            None => {
                                let slot = next_slot;
                                next_slot += 1;
                                moved.push((*id, Some(slot)));
                                slot
                            }
                        };
                        self.scratch.clear();
                        codec::encode(
                            *id,
                            &record.types,
                            record.registered_at_ms,
                            &mut self.scratch,
                        );
                        clients
                            .insert(slot, self.scratch.as_slice())
                            .map_err(|e| self.io(e))?;
                    }
                    None => {
                        if let Some(slot) = self.slots.get(id) {
                            clients.remove(*slot).map_err(|e| self.io(e))?;
                            moved.push((*id, None));
                        }
                    }
                }
            }
            if !dirty.cursors.is_empty() {
                let mut cursors = txn.open_table(CURSORS).map_err(|e| self.io(e))?;
                let added: HashMap<ClientId, u64> = moved
                    .iter()
                    .filter_map(|(id, slot)| slot.map(|slot| (*id, slot)))
                    .collect();
                for (id, resume) in &dirty.cursors {
                    // A new client's row goes in its new slot; a removed client's row is
                    // deleted from the slot it had until this commit.
                    let Some(slot) = added.get(id).or_else(|| self.slots.get(id)).copied() else {
                        continue;
                    };
                    match resume {
                        Some(r) => {
                            cursors
                                .insert(slot, (r.from, r.states_from))
                                .map_err(|e| self.io(e))?;
                        }
                        None => {
                            cursors.remove(slot).map_err(|e| self.io(e))?;
                        }
                    }
                }
            }
            log = self.append_and_trim(&txn, dirty)?;
            // Each table written adds its pages to the commit: untouched ones are left alone.
            if !dirty.latest.is_empty() {
                let mut latest = txn.open_table(LATEST).map_err(|e| self.io(e))?;
                for (key, event) in &dirty.latest {
                    match event {
                        Some(event) => {
                            latest
                                .insert(key.as_str(), (event.seq, event.bytes.as_ref()))
                                .map_err(|e| self.io(e))?;
                        }
                        None => {
                            latest.remove(key.as_str()).map_err(|e| self.io(e))?;
                        }
                    }
                }
            }
            let floor = dirty.floor.or(stored_floor);
            if stored_next_seq != Some(dirty.next_seq)
                || floor != stored_floor
                || stored_floor.is_none()
            {
                let mut meta = txn.open_table(META).map_err(|e| self.io(e))?;
                meta.insert(NEXT_SEQ, dirty.next_seq)
                    .map_err(|e| self.io(e))?;
                meta.insert(CURSOR_FLOOR, floor.unwrap_or(dirty.keep_from))
                    .map_err(|e| self.io(e))?;
            }
        }
        txn.commit().map_err(|e| self.io(e))?;
        self.stored_next_seq = Some(dirty.next_seq);
        self.stored_floor = Some(dirty.floor.or(stored_floor).unwrap_or(dirty.keep_from));
        self.log = log;
        for (id, slot) in moved {
            match slot {
                Some(slot) => self.slots.insert(id, slot),
                None => self.slots.remove(&id),
            };
        }
        self.next_slot = next_slot;
        Ok(())
    }

    /// Appends the batch's events to the log, then deletes the oldest entries while every
    /// cursor has passed them or the log is over a retention bound, at most [`TRIM_STEP`] plus
    /// twice the appended count. Returns the log's size after the commit.
    fn append_and_trim(
        &self,
        txn: &redb::WriteTransaction,
        dirty: &Dirty,
    ) -> Result<LogStats, StoreError> {
        let mut stats = self.log;
        if dirty.appended.is_empty() && stats.entries == 0 {
            return Ok(stats);
        }
        let mut log = txn.open_table(LOG).map_err(|e| self.io(e))?;
        for event in &dirty.appended {
            log.insert(event.seq, event.bytes.as_ref())
                .map_err(|e| self.io(e))?;
            stats.oldest.get_or_insert(event.seq);
            stats.entries += 1;
            stats.bytes += event.bytes.len() as u64;
        }
        let Some(oldest) = stats.oldest else {
            return Ok(stats);
        };
        let over_bounds = |stats: &LogStats| {
            stats.entries > self.retention.max_events || stats.bytes > self.retention.max_bytes
        };
        // Sequence numbers in the log are contiguous, so this many entries every cursor passed.
        let passed = dirty.keep_from.saturating_sub(oldest);
        if passed < TRIM_MIN && !over_bounds(&stats) {
            return Ok(stats);
        }
        // Find how far to go with a read of the oldest entries, then delete them as one range.
        let budget = TRIM_STEP + 2 * dirty.appended.len();
        let mut last = None;
        let mut next_oldest = None;
        for row in log.range(oldest..).map_err(|e| self.io(e))?.take(budget) {
            let (seq, bytes) = row.map_err(|e| self.io(e))?;
            let seq = seq.value();
            if seq >= dirty.keep_from && !over_bounds(&stats) {
                next_oldest = Some(seq);
                break;
            }
            stats.entries -= 1;
            stats.bytes -= bytes.value().len() as u64;
            last = Some(seq);
        }
        if let Some(last) = last {
            log.retain_in(oldest..=last, |_, _| false)
                .map_err(|e| self.io(e))?;
            stats.oldest = match next_oldest {
                Some(seq) => Some(seq),
                None => log
                    .first()
                    .map_err(|e| self.io(e))?
                    .map(|(seq, _)| seq.value()),
            };
        }
        Ok(stats)
    }

    fn io(&self, error: impl Into<redb::Error>) -> StoreError {
        StoreError::Io {
            path: self.path.clone(),
            source: error.into(),
        }
    }

    fn corrupt(&self, cause: Damage) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            cause,
        }
    }
}

/// Parse limits for documents the store wrote itself: they were checked on the way in.
fn unlimited() -> Limits {
    Limits {
        max_message_bytes: usize::MAX,
        ..Limits::default()
    }
}

/// Opens the redb file, classifying what can go wrong; redb's panics are caught, not shown.
/// Only a missing file is created: an existing one that is not a valid store (an empty file
/// included) is corruption, reported and left untouched.
fn open_database(path: &Path) -> Result<Database, StoreError> {
    let path = path.to_owned();
    let exists = match std::fs::metadata(&path) {
        Ok(meta) if meta.len() == 0 => {
            return Err(StoreError::Corrupt {
                path,
                cause: Damage::Empty,
            });
        }
        Ok(_) => true,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => false,
        Err(error) => {
            return Err(StoreError::Io {
                path,
                source: error.into(),
            });
        }
    };
    let opened = std::panic::catch_unwind(|| {
        let mut builder = Database::builder();
        builder
            .set_check_integrity_on_open(true)
            .set_cache_size(STORE_CACHE_BYTES);
        if exists {
            builder.open(&path)
        } else {
            builder.create(&path)
        }
    });
    match opened {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(redb::DatabaseError::DatabaseAlreadyOpen)) => Err(StoreError::Locked { path }),
        // redb reports a file that is not a redb database (bad magic number, short header) as
        // an I/O error of kind InvalidData or UnexpectedEof: that is a corrupt file, not a disk fault.
        Ok(Err(redb::DatabaseError::Storage(redb::StorageError::Io(source))))
            if matches!(
                source.kind(),
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
            ) =>
        {
            Err(StoreError::Corrupt {
                path,
                cause: Damage::Redb(source.into()),
            })
        }
        Ok(Err(redb::DatabaseError::Storage(redb::StorageError::Io(source)))) => {
            Err(StoreError::Io {
                path,
                source: source.into(),
            })
        }
        Ok(Err(e)) => Err(StoreError::Corrupt {
            path,
            cause: Damage::Redb(e.into()),
        }),
        Err(_) => Err(StoreError::Corrupt {
            path,
            cause: Damage::Unreadable,
        }),
    }
}

/// Refuses a data directory or store file owned by another user or not writable by this one.
fn check_access(dir: &Path, file: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    for path in [dir, file] {
        let Ok(meta) = std::fs::metadata(path) else {
            continue;
        };
        let refuse = |reason: String| StoreError::Directory {
            path: path.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::PermissionDenied, reason),
        };
        if meta.uid() != me {
            return Err(refuse(format!(
                "owned by uid {}, but crnpd runs as uid {me}; chown it to this user or run crnpd as its owner",
                meta.uid()
            )));
        }
        if meta.mode() & 0o600 != 0o600 {
            return Err(refuse(format!(
                "mode {:03o} does not let its owner read and write it",
                meta.mode() & 0o7777
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::NvPair;
    use crate::registry::{Registry, RegistryLimits};

    /// `count` events of one size, as the registry sequences them.
    fn events(count: usize) -> Vec<Arc<PublishedEvent>> {
        let mut registry = Registry::new(RegistryLimits::default());
        (0..count)
            .map(|i| {
                registry.publish(
                    Event {
                        class: "EC_Cluster".into(),
                        subclass: "ESC_cluster_r_state".into(),
                        vendor: "SUNW".into(),
                        publisher: "rgm".into(),
                        nvpairs: vec![NvPair::scalar("state_list", format!("S{i:04}").as_str())],
                    },
                    Instant::now(),
                )
            })
            .collect()
    }

    fn store_with(retention: Retention) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(dir.path()).expect("open");
        store.load().expect("load");
        store.set_retention(retention);
        (dir, store)
    }

    fn append(store: &mut Store, appended: &[Arc<PublishedEvent>], keep_from: u64) {
        let dirty = Dirty {
            appended: appended.to_vec(),
            next_seq: appended.last().map_or(0, |e| e.seq + 1),
            keep_from,
            ..Dirty::default()
        };
        store.commit(&dirty).expect("commit");
    }

    #[test]
    fn the_log_keeps_exactly_max_events_and_max_bytes() {
        let all = events(6);
        let size = all[0].bytes.len() as u64;
        let (_dir, mut store) = store_with(Retention {
            max_events: 3,
            max_bytes: u64::MAX,
        });
        append(&mut store, &all, 0);
        let stats = store.log_stats();
        assert_eq!(
            (stats.entries, stats.oldest, stats.bytes),
            (3, Some(3), 3 * size)
        );

        for (max_bytes, kept) in [(2 * size, 2), (2 * size - 1, 1)] {
            let (_dir, mut store) = store_with(Retention {
                max_events: u64::MAX,
                max_bytes,
            });
            append(&mut store, &all, 0);
            assert_eq!(store.log_stats().entries, kept, "max_bytes {max_bytes}");
            assert_eq!(store.log_stats().oldest, Some(6 - kept));
        }
    }

    #[test]
    fn entries_every_cursor_passed_go_in_runs_of_at_least_trim_min() {
        let all = events(TRIM_MIN as usize + 100);
        let (_dir, mut store) = store_with(Retention::default());
        append(&mut store, &all, 0);
        append(&mut store, &[], TRIM_MIN - 1);
        assert_eq!(
            store.log_stats().oldest,
            Some(0),
            "fewer than TRIM_MIN passed: kept"
        );
        append(&mut store, &[], TRIM_MIN);
        let stats = store.log_stats();
        assert_eq!((stats.oldest, stats.entries), (Some(TRIM_MIN), 100));
        let read = store.read_log(0, usize::MAX).expect("read");
        assert_eq!(
            read.first().map(|e| e.seq),
            Some(TRIM_MIN),
            "gone from the file too"
        );
    }
}
