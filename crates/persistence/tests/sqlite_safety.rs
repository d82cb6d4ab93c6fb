//! The SQLite file: durable settings, migrations, refusal of files it must not touch, full disk,
//! read-only access and concurrent writers.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use domain::{IntentStatus, PositionId, SentimentReading, Timestamp};
use persistence::{
    DEFAULT_DATABASE_PATH, MIGRATOR, OrderAnswer, SqliteStoreConfig, SqliteTradeStore, StoreError,
    TradeStore, schema_version,
};
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

/// Every file in the folder with a digest of its bytes, to prove a refused open changed nothing.
fn folder_bytes(dir: &Path) -> Vec<(String, usize, u64)> {
    use std::hash::{Hash, Hasher};
    let mut out: Vec<(String, usize, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let bytes = std::fs::read(e.path()).unwrap();
            let mut h = std::collections::hash_map::DefaultHasher::new();
            bytes.hash(&mut h);
            (
                e.file_name().to_string_lossy().into_owned(),
                bytes.len(),
                h.finish(),
            )
        })
        .collect();
    out.sort();
    out
}

async fn raw(path: &Path) -> SqliteConnection {
    SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(path))
        .await
        .unwrap()
}

#[test]
fn the_default_path_and_urls() {
    assert_eq!(DEFAULT_DATABASE_PATH, "./data/palm-oil-bot.db");
    assert_eq!(
        SqliteStoreConfig::default().path,
        Path::new(DEFAULT_DATABASE_PATH)
    );
    assert_eq!(
        SqliteStoreConfig::from_url("sqlite:///var/lib/pob.db")
            .unwrap()
            .path,
        Path::new("/var/lib/pob.db")
    );
    assert_eq!(
        SqliteStoreConfig::from_url("sqlite:data/x.db")
            .unwrap()
            .path,
        Path::new("data/x.db")
    );
    assert_eq!(
        SqliteStoreConfig::from_url("plain.db").unwrap().path,
        Path::new("plain.db")
    );
    assert!(SqliteStoreConfig::from_url("sqlite::memory:").is_err());
    assert!(SqliteStoreConfig::from_url("sqlite://x.db?mode=memory").is_err());
}

#[tokio::test]
async fn a_new_store_is_created_with_its_folder_and_durable_settings() {
    let (dir, path) = temp_db();
    assert!(!path.parent().unwrap().exists());
    let store = within(SqliteTradeStore::open_path(&path)).await.unwrap();
    assert!(path.is_file());
    let s = store.durability().await.unwrap();
    assert_eq!(s.journal_mode, "wal");
    assert_eq!(s.synchronous, 2, "synchronous must be FULL");
    assert_eq!(s.foreign_keys, 1);
    assert_eq!(s.busy_timeout_ms, 5_000);
    assert_eq!(store.applied_version().await.unwrap(), schema_version());
    assert!(schema_version() >= 2);
    drop(dir);
}

#[tokio::test]
async fn a_committed_intent_survives_closing_and_reopening() {
    let (_dir, path) = temp_db();
    let store = SqliteTradeStore::open_path(&path).await.unwrap();
    store.commit_intent(&intent("pob-1", 1)).await.unwrap();
    store.close().await;
    let again = SqliteTradeStore::open_path(&path).await.unwrap();
    let i = again.intent(&coid("pob-1")).await.unwrap().unwrap();
    assert_eq!(i.status(), IntentStatus::Pending);
    assert_eq!(i.intent, intent("pob-1", 1));
}

#[tokio::test]
async fn upgrades_a_database_of_the_previous_version_keeping_its_data() {
    let (_dir, path) = temp_db();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    // Build a version-1 database with only the first migration.
    let mut conn = SqliteConnection::connect_with(
        &SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true),
    )
    .await
    .unwrap();
    MIGRATOR.run_to(1, &mut conn).await.unwrap();
    sqlx::query(
        "INSERT INTO positions (position_id, symbol_id, side, volume, entry_price, entry_time, status) \
         VALUES (1, 41, 'buy', 100, 400000000, 1000, 'open')",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert!(
        !tables.iter().any(|t| t == "bot_state"),
        "version 1 has no bot_state yet"
    );
    conn.close().await.unwrap();

    let store = SqliteTradeStore::open_path(&path).await.unwrap();
    assert_eq!(store.applied_version().await.unwrap(), schema_version());
    let p = store.position(PositionId(1)).await.unwrap().unwrap();
    assert_eq!(p.entry_time, Timestamp(1_000));
    // Version 2's tables work.
    assert!(!store.kill_switch().await.unwrap().engaged);
    store
        .record_sentiment(&SentimentReading {
            score: 0.1,
            confidence: 0.9,
            source: "perplexity".into(),
            known_at: Timestamp(5),
            item_count: 1,
            summary: "steady".into(),
        })
        .await
        .unwrap();
    assert!(
        store
            .sentiment_at(Timestamp(5), None)
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn a_database_from_a_newer_build_is_refused_and_untouched() {
    let (_dir, path) = temp_db();
    let store = SqliteTradeStore::open_path(&path).await.unwrap();
    store.commit_intent(&intent("pob-1", 1)).await.unwrap();
    store.close().await;
    let mut conn = raw(&path).await;
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from the future', 1, x'00', 0)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    let before = folder_bytes(path.parent().unwrap());

    let err = SqliteTradeStore::open_path(&path).await.unwrap_err();
    assert!(
        matches!(err, StoreError::NewerSchema { found: 9999, known, .. } if known == schema_version()),
        "{err}"
    );
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert!(!err.is_transient());
    assert_eq!(folder_bytes(path.parent().unwrap()), before);
}

#[tokio::test]
async fn files_that_are_not_our_database_are_refused_and_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let mut noise = vec![0u8; 8192];
    let mut x: u32 = 0x1234_5678;
    for b in &mut noise {
        // xorshift: deterministic "random" bytes
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x.to_le_bytes()[0];
    }
    let mut damaged = b"SQLite format 3\0".to_vec();
    damaged.extend_from_slice(&noise);
    let cases: [(&str, Vec<u8>); 3] = [
        ("random.db", noise.clone()),
        (
            "notes.db",
            b"these are my trading notes, not a database\n".repeat(50),
        ),
        ("damaged.db", damaged),
    ];
    for (name, bytes) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let err = within(SqliteTradeStore::open_path(&path))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::NotADatabase { .. } | StoreError::Corrupt { .. }
            ),
            "{name}: {err:?}"
        );
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{name}: {err}"
        );
        assert!(
            std::fs::read(&path).unwrap() == bytes,
            "{name} was modified"
        );
    }
    // Only the three files: nothing was created beside them (no -wal, no -shm, no new database).
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);
}

#[tokio::test]
async fn another_programs_sqlite_database_is_refused_and_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    let mut conn = SqliteConnection::connect_with(
        &SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true),
    )
    .await
    .unwrap();
    sqlx::query("CREATE TABLE recipes (name TEXT)")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let before = folder_bytes(dir.path());
    let err = SqliteTradeStore::open_path(&path).await.unwrap_err();
    assert!(matches!(err, StoreError::SchemaHistory { .. }), "{err}");
    assert!(err.to_string().contains("recipes"), "{err}");
    assert_eq!(folder_bytes(dir.path()), before);
}

#[tokio::test]
async fn read_only_access_reads_and_refuses_writes() {
    let (_dir, path) = temp_db();
    let missing = SqliteTradeStore::open(SqliteStoreConfig {
        read_only: true,
        ..SqliteStoreConfig::new(&path)
    })
    .await
    .unwrap_err();
    assert!(
        matches!(missing, StoreError::Unreadable { .. }),
        "{missing}"
    );
    assert!(!path.exists(), "a read-only open must not create the file");

    let writer = SqliteTradeStore::open_path(&path).await.unwrap();
    writer.commit_intent(&intent("pob-1", 1)).await.unwrap();
    let reader = SqliteTradeStore::open(SqliteStoreConfig {
        read_only: true,
        ..SqliteStoreConfig::new(&path)
    })
    .await
    .unwrap();
    assert!(reader.intent(&coid("pob-1")).await.unwrap().is_some());
    let err = reader.commit_intent(&intent("pob-2", 2)).await.unwrap_err();
    assert!(matches!(err, StoreError::ReadOnly(_)), "{err:?}");
    assert!(!err.is_transient());

    // After the bot stopped cleanly, `positions` can still read the file.
    reader.close().await;
    writer.close().await;
    let later = SqliteTradeStore::open(SqliteStoreConfig {
        read_only: true,
        ..SqliteStoreConfig::new(&path)
    })
    .await
    .unwrap();
    assert_eq!(later.intents_in_flight().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_full_disk_is_a_clear_error_and_loses_nothing_committed() {
    let (_dir, path) = temp_db();
    let config = SqliteStoreConfig {
        max_size_bytes: Some(256 * 1024),
        ..SqliteStoreConfig::new(&path)
    };
    let store = within(SqliteTradeStore::open(config)).await.unwrap();
    let mut stored = 0;
    let mut failure = None;
    for n in 0..200 {
        let reading = SentimentReading {
            score: 0.0,
            confidence: 0.5,
            source: "perplexity".into(),
            known_at: Timestamp(n),
            item_count: 1,
            summary: "x".repeat(8 * 1024),
        };
        match store.record_sentiment(&reading).await {
            Ok(()) => stored += 1,
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let err = failure.expect("a 256 KiB cap must fill up within 200 readings of 8 KiB");
    assert!(matches!(err, StoreError::DiskFull(_)), "{err:?}");
    assert!(err.to_string().contains("full"), "{err}");
    assert!(!err.is_transient());
    assert!(stored > 0);
    // The last committed reading is intact, the failed one left nothing.
    let last = store
        .sentiment_at(Timestamp(1_000), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(last.known_at, Timestamp(stored - 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_lose_nothing_and_never_see_busy() {
    let (_dir, path) = temp_db();
    let store: Arc<dyn TradeStore> = Arc::new(SqliteTradeStore::open_path(&path).await.unwrap());
    // A second store on the same file stands for a second process (e.g. `reconcile` run by hand).
    let other: Arc<dyn TradeStore> = Arc::new(SqliteTradeStore::open_path(&path).await.unwrap());
    let mut tasks = Vec::new();
    for t in 0..8_i64 {
        let s = if t % 2 == 0 {
            store.clone()
        } else {
            other.clone()
        };
        tasks.push(tokio::spawn(async move {
            for n in 0..15_i64 {
                let id = format!("pob-{t}-{n}");
                let pos = t * 100 + n + 1;
                s.commit_intent(&intent(&id, pos)).await?;
                s.mark_sent(&coid(&id), Timestamp(pos)).await?;
                let filled = OrderAnswer::Filled {
                    client_order_id: coid(&id),
                    fill: opening_fill(pos, pos, Some(&id), pos),
                    position: open_position(pos, Some(&id), pos),
                };
                s.record_answer(&filled, Timestamp(pos)).await?;
            }
            Ok::<(), StoreError>(())
        }));
    }
    for t in tasks {
        within(t).await.unwrap().unwrap();
    }
    assert_eq!(store.open_positions().await.unwrap().len(), 120);
    assert_eq!(store.fills(1_000).await.unwrap().len(), 120);
    assert!(store.intents_in_flight().await.unwrap().is_empty());

    // Eight tasks race to mark the same intent sent: exactly one wins, no update is lost or doubled.
    store.commit_intent(&intent("pob-race", 1)).await.unwrap();
    let mut racers = Vec::new();
    for t in 0..8 {
        let s = if t % 2 == 0 {
            store.clone()
        } else {
            other.clone()
        };
        racers.push(tokio::spawn(async move {
            s.mark_sent(&coid("pob-race"), Timestamp(t)).await
        }));
    }
    let mut won = 0;
    for r in racers {
        match within(r).await.unwrap() {
            Ok(()) => won += 1,
            Err(StoreError::IllegalTransition { from: "sent", .. }) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(won, 1);
}

#[tokio::test]
async fn an_edited_or_unfinished_schema_history_is_refused_and_untouched() {
    for (tamper, expect) in [
        (
            "UPDATE _sqlx_migrations SET checksum = x'00' WHERE version = 1",
            "differs",
        ),
        (
            "UPDATE _sqlx_migrations SET success = 0 WHERE version = 2",
            "did not finish",
        ),
    ] {
        let (_dir, path) = temp_db();
        SqliteTradeStore::open_path(&path)
            .await
            .unwrap()
            .close()
            .await;
        let mut conn = raw(&path).await;
        sqlx::query(tamper).execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
        let before = folder_bytes(path.parent().unwrap());
        let err = SqliteTradeStore::open_path(&path).await.unwrap_err();
        assert!(
            matches!(err, StoreError::SchemaHistory { ref detail, .. } if detail.contains(expect)),
            "{err}"
        );
        assert_eq!(folder_bytes(path.parent().unwrap()), before);
    }
}
