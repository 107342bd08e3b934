#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The SQLite ledger against the in-memory reference: same records, same totals, settled in
//! place, kept across reopening, and pending records of dead instances recovered.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use opengateway::Attempt;
use opengateway::accounting::{
    GroupBy, Ledger, LedgerSink, MemorySink, RecordStatus, SqliteSink, TokenCounts, UsageFilter,
    UsageQuery, UsageRecord, UsageTotals, aggregate,
};
use opengateway::pricing::Cost;

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ogw-ledger-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn db(&self) -> PathBuf {
        self.0.join("ledger.db")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn pending(id: &str, instance: &str, started_at_ms: i64) -> UsageRecord {
    UsageRecord::pending(id, instance, started_at_ms, "chat.completions", "fast")
}

fn all() -> UsageFilter {
    UsageFilter::default()
}

fn status_of(sink: &SqliteSink, id: &str) -> RecordStatus {
    sink.records(&all(), usize::MAX)
        .unwrap()
        .into_iter()
        .find(|r| r.id == id)
        .unwrap()
        .status
}

#[test]
fn settling_replaces_the_pending_row_and_round_trips_every_field() {
    let dir = TempDir::new("settle");
    let sink = SqliteSink::open(&dir.db(), "inst-1").unwrap();
    assert!(sink.durable());

    let mut open = pending("req_1", "inst-1", 1_767_225_600_123);
    open.tags = vec!["prod".into(), "batch".into()];
    open.key = Some("key_a".into());
    sink.write(std::slice::from_ref(&open)).unwrap();
    assert_eq!(sink.records(&all(), 10).unwrap(), vec![open.clone()]);

    let settled = UsageRecord {
        ended_at_ms: Some(1_767_225_601_456),
        stream: true,
        user: Some("alice".into()),
        provider: Some("openai".into()),
        provider_model: Some("gpt-4o-mini".into()),
        status: RecordStatus::Error,
        http_status: Some(429),
        error_type: Some("rate_limit_error".into()),
        error_message: Some("slow down — “quoted” ünïcode".into()),
        tokens: TokenCounts {
            prompt: 1200,
            completion: 300,
            cached: 1000,
            cache_write: 100,
            reasoning: 50,
        },
        estimated: true,
        cost: Cost {
            provider_usd: 0.000_123_456_789,
            fee_usd: 0.1 + 0.2,
            total_usd: 0.000_123_456_789 + 0.1 + 0.2,
        },
        latency_ms: Some(1333),
        ttft_ms: Some(0),
        attempts: vec![
            Attempt {
                provider: "anthropic".into(),
                model: "claude".into(),
                status: Some(503),
                error_type: Some("service_unavailable".into()),
                error_message: Some("overloaded".into()),
                latency_ms: 12,
            },
            Attempt {
                provider: "openai".into(),
                model: "gpt-4o-mini".into(),
                status: None,
                error_type: None,
                error_message: None,
                latency_ms: 1321,
            },
        ],
        ..open.clone()
    };
    sink.write(std::slice::from_ref(&settled)).unwrap();
    assert_eq!(sink.records(&all(), 10).unwrap(), vec![settled.clone()]);

    // One row, and the tag rows not doubled.
    let totals = sink
        .totals(&UsageQuery {
            group_by: vec![GroupBy::Tag],
            filter: all(),
        })
        .unwrap();
    let per_tag: Vec<(Option<String>, u64)> = totals
        .iter()
        .map(|t| (t.group[&GroupBy::Tag].clone(), t.requests))
        .collect();
    assert_eq!(
        per_tag,
        vec![(Some("batch".into()), 1), (Some("prod".into()), 1)]
    );
    let conn = rusqlite::Connection::open(dir.db()).unwrap();
    let rows: i64 = conn
        .query_row("SELECT COUNT(*) FROM usage_records", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 1);
}

/// The common settle: only what settling changes differs from the pending row (the narrow
/// `UPDATE`, which leaves the key, user, time and tag indexes as they were). The record reads
/// back whole and every lookup still finds it, no longer as pending.
#[test]
fn a_settle_that_keeps_the_opened_columns_is_found_by_every_lookup() {
    let dir = TempDir::new("narrow");
    let sink = SqliteSink::open(&dir.db(), "inst-1").unwrap();
    let mut open = pending("req_1", "inst-1", 5_000);
    open.key = Some("key_a".into());
    open.user = Some("alice".into());
    open.tags = vec!["prod".into()];
    let other = pending("req_2", "inst-1", 6_000);
    sink.write(&[open.clone(), other.clone()]).unwrap();

    let settled = UsageRecord {
        ended_at_ms: Some(5_900),
        provider: Some("openai".into()),
        provider_model: Some("gpt-4o-mini".into()),
        status: RecordStatus::Ok,
        http_status: Some(200),
        tokens: TokenCounts {
            prompt: 10,
            completion: 20,
            ..Default::default()
        },
        cost: Cost {
            provider_usd: 0.5,
            fee_usd: 0.0,
            total_usd: 0.5,
        },
        latency_ms: Some(900),
        ttft_ms: Some(100),
        ..open.clone()
    };
    sink.write(std::slice::from_ref(&settled)).unwrap();

    let find = |filter: UsageFilter| sink.records(&filter, 10).unwrap();
    assert_eq!(find(all()), vec![other.clone(), settled.clone()]);
    for filter in [
        UsageFilter {
            key: Some("key_a".into()),
            ..all()
        },
        UsageFilter {
            user: Some("alice".into()),
            ..all()
        },
        UsageFilter {
            tag: Some("prod".into()),
            ..all()
        },
        UsageFilter {
            since_ms: Some(5_000),
            until_ms: Some(5_001),
            ..all()
        },
        UsageFilter {
            status: Some(RecordStatus::Ok),
            ..all()
        },
    ] {
        assert_eq!(find(filter.clone()), vec![settled.clone()], "{filter:?}");
    }
    let pending_only = UsageFilter {
        status: Some(RecordStatus::Pending),
        ..all()
    };
    assert_eq!(find(pending_only), vec![other]);
    // Still pending rows only in the recovery index: a later start marks just `req_2`.
    let conn = rusqlite::Connection::open(dir.db()).unwrap();
    let indexed: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM usage_records INDEXED BY usage_records_pending
             WHERE instance = 'inst-1' AND status = 'pending'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(indexed, 1);
}

#[test]
fn changed_tags_and_nan_costs_are_stored_faithfully() {
    let dir = TempDir::new("tags");
    let sink = SqliteSink::open(&dir.db(), "inst-1").unwrap();
    let mut r = pending("req_1", "inst-1", 1_000);
    r.tags = vec!["a".into(), "b".into()];
    sink.write(std::slice::from_ref(&r)).unwrap();
    r.tags = vec!["b".into(), "c".into()];
    r.status = RecordStatus::Ok;
    sink.write(std::slice::from_ref(&r)).unwrap();
    let by_tag = |tag: &str| UsageFilter {
        tag: Some(tag.into()),
        ..all()
    };
    assert!(sink.records(&by_tag("a"), 10).unwrap().is_empty());
    assert_eq!(sink.records(&by_tag("c"), 10).unwrap(), vec![r.clone()]);
    // Written again without tags, the record is in no tag's listing; with one back, in its.
    r.tags.clear();
    sink.write(std::slice::from_ref(&r)).unwrap();
    assert!(sink.records(&by_tag("b"), 10).unwrap().is_empty());
    assert!(sink.records(&by_tag("c"), 10).unwrap().is_empty());
    assert_eq!(sink.records(&all(), 10).unwrap(), vec![r.clone()]);
    r.tags = vec!["c".into()];
    sink.write(std::slice::from_ref(&r)).unwrap();
    assert_eq!(sink.records(&by_tag("c"), 10).unwrap(), vec![r.clone()]);

    // SQLite keeps NaN as NULL: a NaN cost must not fail the batch, and reads back as NaN.
    r.cost.fee_usd = f64::NAN;
    sink.write(std::slice::from_ref(&r)).unwrap();
    let back = sink.records(&all(), 10).unwrap();
    assert!(back[0].cost.fee_usd.is_nan());
    let totals = sink.totals(&UsageQuery::default()).unwrap();
    assert!(totals[0].fee_usd.is_nan());
    assert_eq!(totals[0].provider_cost_usd, 0.0);
}

/// A deterministic spread of records over models, providers, keys, users, tags, statuses
/// and days, some sharing a start time so that the id decides their order.
fn generate(rng: &mut fastrand::Rng, n: usize) -> Vec<UsageRecord> {
    const BASE: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
    const DAY: i64 = 86_400_000;
    let models: [(&str, Option<&str>, Option<&str>); 7] = [
        ("fast", Some("openai"), Some("gpt-4o-mini")),
        ("openai/gpt-4o-mini", Some("openai"), Some("gpt-4o-mini")),
        ("openai/gpt-4o", Some("openai"), Some("gpt-4o")),
        ("smart", Some("anthropic"), Some("claude-sonnet")),
        ("smart", None, None),
        ("groq/llama", Some("groq"), None),
        ("Zed/model", None, None),
    ];
    let keys = [None, Some("key_a"), Some("key_b"), Some("KEY_c")];
    let users = [None, Some("alice"), Some("bob")];
    let tag_pool = ["prod", "dev", "batch", "Éclair", "zz"];
    let statuses = [
        RecordStatus::Pending,
        RecordStatus::Ok,
        RecordStatus::Ok,
        RecordStatus::Error,
        RecordStatus::Cancelled,
        RecordStatus::Interrupted,
    ];
    let mut ids: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut ids);
    let mut out: Vec<UsageRecord> = Vec::with_capacity(n);
    for (i, id) in ids.into_iter().enumerate() {
        let started_at_ms = if i % 10 == 9 {
            out[i - 1].started_at_ms
        } else {
            BASE + rng.i64(0..75 * DAY)
        };
        let (model, provider, provider_model) = models[rng.usize(..models.len())];
        let mut tags: Vec<String> = Vec::new();
        for _ in 0..rng.usize(0..=2) {
            let tag = tag_pool[rng.usize(..tag_pool.len())].to_owned();
            if !tags.contains(&tag) {
                tags.push(tag);
            }
        }
        let provider_usd = rng.f64() * 0.05;
        let fee_usd = rng.f64() * 0.001;
        let mut r = pending(&format!("req_{id:04}"), "inst-gen", started_at_ms);
        r.model = model.into();
        r.provider = provider.map(Into::into);
        r.provider_model = provider_model.map(Into::into);
        r.key = keys[rng.usize(..keys.len())].map(Into::into);
        r.user = users[rng.usize(..users.len())].map(Into::into);
        r.tags = tags;
        r.status = statuses[rng.usize(..statuses.len())];
        r.stream = rng.bool();
        r.estimated = rng.u8(..4) == 0;
        r.tokens = TokenCounts {
            prompt: rng.u64(0..20_000),
            completion: rng.u64(0..4_000),
            cached: rng.u64(0..1_000),
            cache_write: rng.u64(0..500),
            reasoning: rng.u64(0..300),
        };
        r.cost = Cost {
            provider_usd,
            fee_usd,
            total_usd: provider_usd + fee_usd,
        };
        if r.status != RecordStatus::Pending {
            r.ended_at_ms = Some(started_at_ms + rng.i64(1..60_000));
            r.latency_ms = Some(rng.u64(1..60_000));
            r.http_status = Some(if r.status == RecordStatus::Error {
                500
            } else {
                200
            });
        }
        if provider.is_some() {
            r.attempts = vec![Attempt {
                provider: provider.unwrap_or_default().into(),
                model: provider_model.unwrap_or(model).into(),
                status: r.http_status,
                error_type: None,
                error_message: None,
                latency_ms: rng.u64(1..5_000),
            }];
        }
        out.push(r);
    }
    out
}

fn assert_totals_eq(got: &[UsageTotals], want: &[UsageTotals], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: row count");
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.group, w.group, "{what}: group order");
        let counts = |t: &UsageTotals| {
            [
                t.requests,
                t.ok,
                t.errors,
                t.cancelled,
                t.interrupted,
                t.estimated,
                t.prompt_tokens,
                t.completion_tokens,
                t.cached_tokens,
                t.cache_write_tokens,
                t.reasoning_tokens,
            ]
        };
        assert_eq!(counts(g), counts(w), "{what}: counts of {:?}", w.group);
        for (a, b) in [
            (g.provider_cost_usd, w.provider_cost_usd),
            (g.fee_usd, w.fee_usd),
            (g.total_cost_usd, w.total_cost_usd),
        ] {
            assert!((a - b).abs() < 1e-9, "{what}: cost {a} vs {b}");
        }
    }
}

fn filters() -> Vec<(&'static str, UsageFilter)> {
    const BASE: i64 = 1_767_225_600_000;
    const DAY: i64 = 86_400_000;
    vec![
        ("all", all()),
        (
            "since/until",
            UsageFilter {
                since_ms: Some(BASE + 10 * DAY),
                until_ms: Some(BASE + 40 * DAY + 1),
                ..all()
            },
        ),
        (
            "key",
            UsageFilter {
                key: Some("key_a".into()),
                ..all()
            },
        ),
        (
            "unknown key",
            UsageFilter {
                key: Some("nope".into()),
                ..all()
            },
        ),
        (
            "user",
            UsageFilter {
                user: Some("alice".into()),
                ..all()
            },
        ),
        (
            "tag",
            UsageFilter {
                tag: Some("prod".into()),
                ..all()
            },
        ),
        (
            "model alias",
            UsageFilter {
                model: Some("smart".into()),
                ..all()
            },
        ),
        (
            "model provider/model",
            UsageFilter {
                model: Some("openai/gpt-4o-mini".into()),
                ..all()
            },
        ),
        (
            "provider",
            UsageFilter {
                provider: Some("anthropic".into()),
                ..all()
            },
        ),
        (
            "status",
            UsageFilter {
                status: Some(RecordStatus::Error),
                ..all()
            },
        ),
        (
            "combined",
            UsageFilter {
                since_ms: Some(BASE + 5 * DAY),
                tag: Some("dev".into()),
                status: Some(RecordStatus::Ok),
                ..all()
            },
        ),
    ]
}

fn groupings() -> Vec<Vec<GroupBy>> {
    let mut out: Vec<Vec<GroupBy>> = vec![Vec::new()];
    out.extend(GroupBy::ALL.iter().map(|g| vec![*g]));
    out.extend([
        vec![GroupBy::Model, GroupBy::Day],
        vec![GroupBy::Key, GroupBy::Tag],
        vec![GroupBy::Provider, GroupBy::Status],
        vec![GroupBy::Month, GroupBy::User, GroupBy::Tag],
        vec![GroupBy::Tag, GroupBy::Tag],
    ]);
    out
}

/// Every filter × grouping, and listings with limits, against the in-memory reference.
fn assert_matches_reference(sqlite: &SqliteSink, memory: &MemorySink) -> usize {
    let reference = memory.records(&all(), usize::MAX).unwrap();
    let mut checked = 0;
    for (name, filter) in filters() {
        let matched = memory.records(&filter, usize::MAX).unwrap().len();
        assert!(
            (matched > 0) == (name != "unknown key"),
            "{name}: {matched} records, a filter that matches nothing proves little"
        );
        for group_by in groupings() {
            let query = UsageQuery {
                group_by: group_by.clone(),
                filter: filter.clone(),
            };
            let got = sqlite.totals(&query).unwrap();
            let want = aggregate(&reference, &query);
            assert_totals_eq(&got, &want, &format!("{name} by {group_by:?}"));
            checked += 1;
        }
        for limit in [usize::MAX, 25, 1, 0] {
            let got = sqlite.records(&filter, limit).unwrap();
            let want = memory.records(&filter, limit).unwrap();
            let ids = |rs: &[UsageRecord]| rs.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
            assert_eq!(ids(&got), ids(&want), "{name} limit {limit}: ids");
            assert_eq!(got, want, "{name} limit {limit}: records");
        }
    }
    checked
}

#[test]
fn totals_and_listings_equal_the_reference_and_survive_reopening() {
    let dir = TempDir::new("reference");
    let mut rng = fastrand::Rng::with_seed(0x0917_2026);
    let records = generate(&mut rng, 300);
    let memory = MemorySink::new();
    let sqlite = SqliteSink::open(&dir.db(), "inst-gen").unwrap();
    for batch in records.chunks(40) {
        memory.write(batch).unwrap();
        sqlite.write(batch).unwrap();
    }
    // Settle some of them again (upserts), in one batch.
    let settled: Vec<UsageRecord> = records
        .iter()
        .filter(|r| r.status == RecordStatus::Pending)
        .step_by(2)
        .map(|r| UsageRecord {
            status: RecordStatus::Ok,
            ended_at_ms: Some(r.started_at_ms + 5),
            tokens: TokenCounts {
                prompt: r.tokens.prompt + 7,
                ..r.tokens
            },
            ..r.clone()
        })
        .collect();
    assert!(settled.len() > 10, "the generator makes pending records");
    memory.write(&settled).unwrap();
    sqlite.write(&settled).unwrap();

    let all_records = sqlite.records(&all(), usize::MAX).unwrap();
    assert_eq!(all_records.len(), 300);
    assert!(all_records.iter().any(|r| r.tags.is_empty()));
    assert!(all_records.iter().any(|r| r.tags.len() == 2));
    let checked = assert_matches_reference(&sqlite, &memory);
    assert_eq!(checked, filters().len() * groupings().len());

    drop(sqlite);
    let reopened = SqliteSink::open(&dir.db(), "inst-gen-2").unwrap();
    assert_eq!(reopened.records(&all(), usize::MAX).unwrap(), all_records);
    assert_matches_reference(&reopened, &memory);
}

fn lock_file(db: &Path, instance: &str) -> PathBuf {
    db.with_file_name("ledger.db.instances")
        .join(format!("{instance}.lock"))
}

#[test]
fn recover_marks_only_pending_records_of_dead_instances() {
    let dir = TempDir::new("recover");
    let db = dir.db();
    let a = SqliteSink::open(&db, "a").unwrap();
    assert!(lock_file(&db, "a").exists());
    let mut a3 = pending("req_a3", "a", 3);
    a3.status = RecordStatus::Ok;
    a.write(&[pending("req_a1", "a", 1), pending("req_a2", "a", 2), a3])
        .unwrap();
    let b = SqliteSink::open(&db, "b").unwrap();
    b.write(&[pending("req_b1", "b", 4)]).unwrap();

    // A second live ledger cannot take an id that is in use.
    assert!(SqliteSink::open(&db, "b").is_err());

    // A is alive: its lock is held.
    assert_eq!(b.recover("b").unwrap(), 0);
    assert_eq!(status_of(&b, "req_a1"), RecordStatus::Pending);

    // A goes away without settling; its lock goes with it.
    drop(a);
    assert!(!lock_file(&db, "a").exists());
    assert_eq!(b.recover("b").unwrap(), 2);
    assert_eq!(status_of(&b, "req_a1"), RecordStatus::Interrupted);
    assert_eq!(status_of(&b, "req_a2"), RecordStatus::Interrupted);
    assert_eq!(status_of(&b, "req_a3"), RecordStatus::Ok);
    assert_eq!(status_of(&b, "req_b1"), RecordStatus::Pending);
    let interrupted = b
        .records(&all(), 10)
        .unwrap()
        .into_iter()
        .find(|r| r.id == "req_a1")
        .unwrap();
    assert_eq!(interrupted.ended_at_ms, None, "when it died is not known");
    assert_eq!(b.recover("b").unwrap(), 0);

    // An instance that never left a lock file is not running.
    b.write(&[pending("req_ghost", "ghost", 5)]).unwrap();
    assert_eq!(b.recover("b").unwrap(), 1);
    assert_eq!(status_of(&b, "req_ghost"), RecordStatus::Interrupted);

    // A killed process leaves its lock file behind, unlocked: dead too, and the file goes.
    std::fs::write(lock_file(&db, "killed"), b"").unwrap();
    b.write(&[pending("req_k1", "killed", 6)]).unwrap();
    assert_eq!(b.recover("b").unwrap(), 1);
    assert!(!lock_file(&db, "killed").exists());

    // Any instance id makes one safe lock file name.
    let odd = SqliteSink::open(&db, "../odd/id").unwrap();
    odd.write(&[pending("req_odd", "../odd/id", 7)]).unwrap();
    assert!(lock_file(&db, "%2E%2E%2Fodd%2Fid").exists());
    assert_eq!(b.recover("b").unwrap(), 0);
    drop(odd);
    assert_eq!(b.recover("b").unwrap(), 1);
    assert_eq!(status_of(&b, "req_b1"), RecordStatus::Pending);
}

/// Under steady writes the write-ahead log starts over rather than grow with everything ever
/// written: the checkpoint thread's passive checkpoints alone never catch up with a writer
/// that commits meanwhile (the log once reached 900 MB beside a 25 MB database).
#[test]
fn the_wal_stays_bounded_under_steady_writes() {
    use std::time::{Duration, Instant};
    let dir = TempDir::new("wal");
    let sink = SqliteSink::open(&dir.db(), "inst-w").unwrap();
    let wal_size = || {
        std::fs::metadata(dir.0.join("ledger.db-wal"))
            .map(|m| m.len())
            .unwrap_or(0)
    };
    let started = Instant::now();
    let mut n = 0_u64;
    let mut at_half: Option<u64> = None;
    // A commit about every millisecond for 4 s (eight checkpoint periods), each an open and
    // the settle of the one before, as the writer commits them under load. A log that never
    // starts over grows in proportion to the time; one that does keeps the size it reached in
    // its first periods.
    while started.elapsed() < Duration::from_secs(4) {
        let mut batch = vec![pending(
            &format!("req_{n:012}"),
            "inst-w",
            1_767_225_600_000,
        )];
        if n > 0 {
            let mut settled = pending(&format!("req_{:012}", n - 1), "inst-w", 1_767_225_600_000);
            settled.status = RecordStatus::Ok;
            settled.ended_at_ms = Some(1_767_225_600_001);
            batch.push(settled);
        }
        // What the ledger's writer does with every batch.
        sink.write(&batch).unwrap();
        sink.maintain();
        n += 1;
        if at_half.is_none() && started.elapsed() >= Duration::from_millis(1500) {
            at_half = Some(wal_size());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let (at_half, at_end) = (at_half.unwrap(), wal_size());
    assert!(at_half > 0, "the WAL is in use");
    assert!(
        at_end * 2 < at_half * 3,
        "{n} commits: the WAL was {at_half} bytes after 1.5 s and {at_end} bytes after 4 s"
    );
}

/// The files an instance keeps beside the database: its lock and its journal's generations.
fn instance_files(db: &Path, stem: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(db.with_file_name("ledger.db.instances"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(&format!("{stem}.")))
        .collect();
    names.sort();
    names
}

/// An opened record is journaled (an append, no commit) so that the request need not wait for
/// the database; a process that dies before its record reaches the database still loses
/// nothing: the next recovery stores it, as opened, marked interrupted.
#[test]
fn journaled_records_of_a_dead_instance_are_recovered_as_interrupted() {
    let dir = TempDir::new("journal");
    let db = dir.db();
    let a = SqliteSink::open(&db, "a").unwrap();
    let mut held = pending("req_held", "a", 10);
    held.user = Some("ada".into());
    held.tags = vec!["batch".into(), "eu".into()];
    held.stream = true;
    assert!(a.journal(&held).unwrap(), "the SQLite sink journals");
    let mut done = pending("req_done", "a", 11);
    assert!(a.journal(&done).unwrap());
    let written = pending("req_written", "a", 12);
    assert!(a.journal(&written).unwrap());
    // One is settled before its pending form was written, one is written pending.
    done.status = RecordStatus::Ok;
    done.ended_at_ms = Some(20);
    a.write(&[done.clone(), written.clone()]).unwrap();
    assert_eq!(instance_files(&db, "a"), ["a.journal.1", "a.lock"]);

    let b = SqliteSink::open(&db, "b").unwrap();
    // A is alive: its journal is its own.
    assert_eq!(b.recover("b").unwrap(), 0);
    assert_eq!(b.record("req_held").unwrap(), None);

    // A dies with `req_held` only in its journal: the file stays, the lock goes.
    drop(a);
    assert_eq!(instance_files(&db, "a"), ["a.journal.1"]);
    assert_eq!(
        b.recover("b").unwrap(),
        2,
        "req_held from the journal, req_written's row"
    );
    let recovered = b.record("req_held").unwrap().unwrap();
    assert_eq!(
        recovered,
        UsageRecord {
            status: RecordStatus::Interrupted,
            ..held
        }
    );
    assert_eq!(
        b.records(
            &UsageFilter {
                tag: Some("eu".into()),
                ..all()
            },
            10
        )
        .unwrap()
        .len(),
        1,
        "its tags are stored too"
    );
    assert_eq!(status_of(&b, "req_written"), RecordStatus::Interrupted);
    assert_eq!(b.record("req_done").unwrap(), Some(done));
    assert!(
        instance_files(&db, "a").is_empty(),
        "the journal and lock are gone"
    );
    assert_eq!(b.recover("b").unwrap(), 0);

    // A torn last line (a process killed inside its append) is skipped, not fatal.
    let torn = db.with_file_name("ledger.db.instances").join("c.journal.3");
    let mut lines = serde_json::to_vec(&pending("req_c1", "c", 30)).unwrap();
    lines.extend_from_slice(b"\n{\"id\":\"req_c2\",\"inst");
    std::fs::write(&torn, lines).unwrap();
    assert_eq!(b.recover("b").unwrap(), 1);
    assert_eq!(status_of(&b, "req_c1"), RecordStatus::Interrupted);
    assert!(!torn.exists());
}

/// A journal starts a new file once the current one is past a megabyte, and deletes a file as
/// soon as every record it holds is in the database: a busy process keeps about one file.
/// A process that closes with everything written leaves none.
#[test]
fn spent_journal_files_are_deleted() {
    let dir = TempDir::new("journal-rotate");
    let db = dir.db();
    let sink = SqliteSink::open(&db, "busy").unwrap();
    let mut in_flight: Vec<UsageRecord> = Vec::new();
    let mut max_files = 0;
    for n in 0..12_000 {
        let mut r = pending(&format!("req_{n:06}"), "busy", n);
        r.tags = vec!["a-long-enough-tag-to-fill-the-journal-faster".into()];
        assert!(sink.journal(&r).unwrap());
        in_flight.push(r);
        if in_flight.len() == 100 {
            for r in &mut in_flight {
                r.status = RecordStatus::Ok;
            }
            sink.write(&in_flight).unwrap();
            in_flight.clear();
            max_files = max_files.max(instance_files(&db, "busy").len());
        }
    }
    let files = instance_files(&db, "busy");
    let generation: u64 = files[0].rsplit('.').next().unwrap().parse().unwrap();
    assert!(generation >= 3, "{files:?}: the journal rotated");
    assert_eq!(
        files.len(),
        2,
        "{files:?}: the current journal and the lock"
    );
    assert!(
        max_files <= 3,
        "at most two journal files at a time, saw {max_files}"
    );
    assert_eq!(
        sink.totals(&UsageQuery::default()).unwrap()[0].requests,
        12_000
    );
    drop(sink);
    assert!(instance_files(&db, "busy").is_empty());
}

/// Dropping the last handle on a ledger waits for its writer: every queued record is in the
/// database and the instance's journal and lock are gone when the drop returns, so a process
/// that exits right after (the server's `main` returning) leaves nothing behind.
#[tokio::test]
async fn a_dropped_ledger_has_written_everything_and_removed_its_files() {
    let dir = TempDir::new("drop");
    let db = dir.db();
    let ledger = Ledger::new(
        Arc::new(SqliteSink::open(&db, "gone").unwrap()),
        "gone".into(),
    );
    for n in 0..200 {
        ledger
            .open(pending(&format!("req_{n:03}"), "gone", n))
            .await
            .unwrap();
    }
    for n in 0..200 {
        let mut record = pending(&format!("req_{n:03}"), "gone", n);
        record.status = RecordStatus::Ok;
        record.ended_at_ms = Some(n + 1);
        ledger.settle(record);
    }
    drop(ledger);
    assert_eq!(instance_files(&db, "gone"), Vec::<String>::new());
    let reader = SqliteSink::open(&db, "reader").unwrap();
    let records = reader.records(&all(), 1_000).unwrap();
    assert_eq!(records.len(), 200);
    assert!(records.iter().all(|r| r.status == RecordStatus::Ok));
}
