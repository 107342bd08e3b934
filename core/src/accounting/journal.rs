//! The open-record journal of a SQLite ledger: every record a request opens is appended, as one
//! JSON line, to a file of the instance's own before the request goes upstream, so the request
//! need not wait for a database commit and a killed process still loses nothing (the append is
//! in the operating system's cache once `write` returns, as a commit with
//! `synchronous = NORMAL` is). The ledger's writer stores records in SQLite later, in batches;
//! an entry is spent once its record is there, in whatever form, and a file whose entries are
//! all spent is deleted. A recovery reads the journals of dead instances and stores what they
//! opened and never wrote as `interrupted`.
//!
//! Files are `<instance>.journal.<generation>` beside the instance's lock file; a new
//! generation starts once the current file is past [`ROTATE_BYTES`], so a busy process keeps
//! about that much on disk.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::record::UsageRecord;
use super::sink::LedgerError;

/// Size past which the next append starts a new journal file.
const ROTATE_BYTES: u64 = 1024 * 1024;

/// This instance's journal: the open file and which entries are not spent yet.
#[derive(Debug)]
pub(super) struct Journal {
    dir: PathBuf,
    /// The instance's file-name stem (its lock file is `<stem>.lock`).
    stem: String,
    /// The file appends go to, once the first record is journaled.
    current: Option<File>,
    generation: u64,
    current_bytes: u64,
    /// Journaled records not yet written to the database, by id: their generation.
    unspent: HashMap<String, u64>,
    /// How many unspent entries each generation that still has a file holds.
    live: BTreeMap<u64, usize>,
}

impl Journal {
    /// The journal of the instance whose lock file is `<dir>/<stem>.lock`; no file is made
    /// before the first append.
    pub(super) fn new(dir: PathBuf, stem: String) -> Self {
        Journal {
            dir,
            stem,
            current: None,
            generation: 0,
            current_bytes: 0,
            unspent: HashMap::new(),
            live: BTreeMap::new(),
        }
    }

    /// Appends `line` (one record as JSON, ending in a newline) as the entry of `id`.
    pub(super) fn append(&mut self, id: &str, line: &[u8]) -> Result<(), LedgerError> {
        if self.current.is_none() || self.current_bytes >= ROTATE_BYTES {
            self.rotate()?;
        }
        let Some(file) = self.current.as_mut() else {
            return Err(LedgerError("the journal has no open file".into()));
        };
        if let Err(e) = file.write_all(line) {
            // A short write leaves a torn line, which recovery skips; later appends start a
            // file of their own.
            self.current = None;
            return Err(LedgerError(format!(
                "cannot append to the ledger journal: {e}"
            )));
        }
        self.current_bytes += line.len() as u64;
        if let Some(old) = self.unspent.insert(id.to_owned(), self.generation) {
            self.release(old);
        }
        *self.live.entry(self.generation).or_default() += 1;
        Ok(())
    }

    /// Marks the entries of these records spent (their records are in the database) and deletes
    /// the files left with no unspent entry.
    pub(super) fn spend<'a>(&mut self, ids: impl Iterator<Item = &'a str>) {
        if self.unspent.is_empty() {
            return;
        }
        let mut emptied = false;
        for id in ids {
            if let Some(generation) = self.unspent.remove(id) {
                emptied |= self.release(generation);
            }
        }
        if emptied {
            self.delete_spent_files();
        }
    }

    /// For each id, whether it was journaled and never written (so no row has it yet).
    pub(super) fn unwritten<'a>(&self, ids: impl Iterator<Item = &'a str>) -> Vec<bool> {
        if self.unspent.is_empty() {
            return Vec::new();
        }
        ids.map(|id| self.unspent.contains_key(id)).collect()
    }

    /// Whether every journaled record has been written.
    pub(super) fn all_spent(&self) -> bool {
        self.unspent.is_empty()
    }

    /// Deletes every file of this journal: called when the instance closes with all spent.
    pub(super) fn remove_files(&mut self) {
        self.current = None;
        for generation in std::mem::take(&mut self.live).into_keys() {
            remove_file(&self.path(generation), "a spent ledger journal");
        }
    }

    /// One entry fewer in `generation`; true when that emptied it.
    fn release(&mut self, generation: u64) -> bool {
        match self.live.get_mut(&generation) {
            Some(n) => {
                *n = n.saturating_sub(1);
                *n == 0
            }
            None => false,
        }
    }

    fn delete_spent_files(&mut self) {
        let current = self.generation;
        let spent: Vec<u64> = self
            .live
            .iter()
            .filter(|&(&g, &n)| n == 0 && g != current)
            .map(|(&g, _)| g)
            .collect();
        for generation in spent {
            self.live.remove(&generation);
            remove_file(&self.path(generation), "a spent ledger journal");
        }
    }

    fn rotate(&mut self) -> Result<(), LedgerError> {
        let generation = self.generation + 1;
        let path = self.path(generation);
        let file = File::options()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| LedgerError(format!("cannot create {}: {e}", path.display())))?;
        self.current = Some(file);
        self.live.entry(generation).or_default();
        self.generation = generation;
        self.current_bytes = 0;
        self.delete_spent_files();
        Ok(())
    }

    fn path(&self, generation: u64) -> PathBuf {
        self.dir
            .join(format!("{}{JOURNAL_INFIX}{generation}", self.stem))
    }
}

/// What separates an instance's stem from the generation in a journal file's name.
const JOURNAL_INFIX: &str = ".journal.";

/// The stem of the instance a journal file belongs to, when `name` is one.
pub(super) fn journal_stem(name: &str) -> Option<&str> {
    let (stem, generation) = name.rsplit_once(JOURNAL_INFIX)?;
    (!stem.is_empty() && generation.bytes().all(|b| b.is_ascii_digit()) && !generation.is_empty())
        .then_some(stem)
}

/// A journal line: what a record holds when it is opened (everything else is not known yet),
/// which is all a recovery stores of it. Writing only these takes a third of the instructions
/// the whole record did.
#[derive(Serialize, Deserialize)]
struct Entry<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    instance: Cow<'a, str>,
    started_at_ms: i64,
    #[serde(borrow)]
    endpoint: Cow<'a, str>,
    stream: bool,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    key: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    user: Option<Cow<'a, str>>,
    #[serde(borrow)]
    model: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "<[_]>::is_empty")]
    tags: Vec<String>,
}

/// `record`'s journal line (JSON and a newline).
pub(super) fn entry_line(record: &UsageRecord) -> Result<Vec<u8>, LedgerError> {
    let entry = Entry {
        id: Cow::Borrowed(&record.id),
        instance: Cow::Borrowed(&record.instance),
        started_at_ms: record.started_at_ms,
        endpoint: Cow::Borrowed(&record.endpoint),
        stream: record.stream,
        key: record.key.as_deref().map(Cow::Borrowed),
        user: record.user.as_deref().map(Cow::Borrowed),
        model: Cow::Borrowed(&record.model),
        tags: record.tags.clone(),
    };
    let mut line = Vec::with_capacity(256);
    serde_json::to_writer(&mut line, &entry)
        .map_err(|e| LedgerError(format!("cannot encode a journal entry: {e}")))?;
    line.push(b'\n');
    Ok(line)
}

/// The records a journal file holds, pending as they were opened; a torn or unreadable line (a
/// write cut short) is skipped.
pub(super) fn read_records(path: &Path) -> Result<Vec<UsageRecord>, LedgerError> {
    let file = File::open(path)
        .map_err(|e| LedgerError(format!("cannot read {}: {e}", path.display())))?;
    let mut records = Vec::new();
    for line in BufReader::new(file).split(b'\n') {
        let line = line.map_err(|e| LedgerError(format!("cannot read {}: {e}", path.display())))?;
        match serde_json::from_slice::<Entry<'_>>(&line) {
            Ok(entry) => records.push(UsageRecord {
                stream: entry.stream,
                key: entry.key.map(Cow::into_owned),
                user: entry.user.map(Cow::into_owned),
                tags: entry.tags,
                ..UsageRecord::pending(
                    entry.id,
                    entry.instance,
                    entry.started_at_ms,
                    entry.endpoint,
                    entry.model,
                )
            }),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "a torn ledger journal line is skipped");
            }
        }
    }
    Ok(records)
}

/// Deletes a file of the ledger's (`what` names it in the warning when that fails); one that is
/// already gone is no failure.
pub(super) fn remove_file(path: &Path, what: &str) {
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove {what}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journal_file_name_gives_its_stem() {
        assert_eq!(journal_stem("inst_ab.journal.12"), Some("inst_ab"));
        assert_eq!(journal_stem("%2E.journal.1"), Some("%2E"));
        assert_eq!(journal_stem("inst_ab.lock"), None);
        assert_eq!(journal_stem("inst_ab.journal."), None);
        assert_eq!(journal_stem("inst_ab.journal.1x"), None);
        assert_eq!(journal_stem(".journal.3"), None);
    }
}
