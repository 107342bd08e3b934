//! Micro-benchmark of the SQLite ledger's writes, the store work every request costs: its
//! record written pending when it is accepted and again when it settles.
//!
//! `sqlite_write/<n>`: one [`SqliteSink::write`] batch (and the sink's upkeep after it) (one transaction) holding `n` new
//! pending records and the settled form of the `n` opened by the batch before, as the ledger's
//! writer commits them under load (more concurrent requests, larger batches). Throughput is in
//! requests (an open plus a settle each); records carry no key, user or tags, like the server
//! benchmark's requests.
//!
//! Run: `cargo bench -p opengateway --bench ledger` (a quick pass:
//! `cargo bench -p opengateway --bench ledger -- --warm-up-time 1 --measurement-time 3`).

use std::path::PathBuf;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use opengateway::Attempt;
use opengateway::accounting::{LedgerSink, RecordStatus, SqliteSink, TokenCounts, UsageRecord};

fn pending(n: u64) -> UsageRecord {
    UsageRecord::pending(
        format!("req_{n:024}"),
        "inst_bench",
        1_780_000_000_000 + i64::try_from(n).unwrap_or(i64::MAX),
        "chat.completions",
        "mock/mock-gpt",
    )
}

fn settled(n: u64) -> UsageRecord {
    let mut r = pending(n);
    r.ended_at_ms = Some(r.started_at_ms + 1);
    r.provider = Some("mock".into());
    r.provider_model = Some("mock-gpt".into());
    r.status = RecordStatus::Ok;
    r.http_status = Some(200);
    r.tokens = TokenCounts {
        prompt: 9,
        completion: 20,
        ..Default::default()
    };
    r.latency_ms = Some(1);
    r.attempts = vec![Attempt {
        provider: "mock".into(),
        model: "mock-gpt".into(),
        status: Some(200),
        error_type: None,
        error_message: None,
        latency_ms: 1,
    }];
    r
}

fn sqlite_write(c: &mut Criterion) {
    let dir: PathBuf =
        std::env::temp_dir().join(format!("ogw-bench-ledger-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut group = c.benchmark_group("sqlite_write");
    for batch in [1_u64, 8, 64] {
        let sink = SqliteSink::open(&dir.join(format!("b{batch}.db")), "inst_bench")
            .unwrap_or_else(|e| panic!("cannot open the bench ledger: {e}"));
        let mut next = 0_u64;
        group.throughput(Throughput::Elements(batch));
        group.bench_function(BenchmarkId::from_parameter(batch), |b| {
            b.iter(|| {
                let mut records = Vec::with_capacity(2 * batch as usize);
                records.extend((next..next + batch).map(pending));
                if next >= batch {
                    records.extend((next - batch..next).map(settled));
                }
                next += batch;
                sink.write(&records)
                    .unwrap_or_else(|e| panic!("ledger write failed: {e}"));
                // What the ledger's writer does after every batch (the WAL's upkeep).
                sink.maintain();
            });
        });
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, sqlite_write);
criterion_main!(benches);
