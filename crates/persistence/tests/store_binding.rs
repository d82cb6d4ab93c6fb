//! A store belongs to one account and one process: binding, the lease, conflicting deal ids,
//! findings an operator must acknowledge, a clean stop that leaves the file complete, backups
//! beside a writer, and read-only opens that write nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use domain::{Price, Timestamp};
use persistence::{
    Acknowledge, Binding, Lease, SqliteStoreConfig, SqliteTradeStore, StoreError, StoreIdentity,
    TradeStore, inspect_copy,
};

fn demo(account: i64) -> StoreIdentity {
    StoreIdentity::new("demo.ctraderapi.com", account, false)
}

#[tokio::test]
async fn a_store_is_bound_on_first_use_and_refuses_another_identity_naming_both() {
    let (_dir, path) = temp_db();
    let store = SqliteTradeStore::open_path(&path).await.unwrap();
    assert_eq!(store.identity().await.unwrap(), None);
    assert_eq!(
        store.bind(&demo(111), Timestamp(1)).await.unwrap(),
        Binding::BoundNow
    );
    assert_eq!(
        store.bind(&demo(111), Timestamp(2)).await.unwrap(),
        Binding::Matches
    );
    for other in [
        demo(222),
        StoreIdentity::new("demo.ctraderapi.com", 111, true),
        StoreIdentity::new("127.0.0.1", 111, false),
    ] {
        match store.bind(&other, Timestamp(3)).await {
            Err(e @ StoreError::BoundElsewhere { .. }) => {
                let text = e.to_string();
                assert!(
                    text.contains("demo account 111 on demo.ctraderapi.com")
                        && text.contains(&other.to_string())
                        && text.contains("--new-store")
                        && text.contains("bot.db"),
                    "{text}"
                );
            }
            other => panic!("expected BoundElsewhere, got {other:?}"),
        }
    }
    // The binding survives a restart and is not changed by a refused start.
    store.close().await;
    let again = SqliteTradeStore::open_path(&path).await.unwrap();
    assert_eq!(again.identity().await.unwrap(), Some(demo(111)));
}

#[tokio::test]
async fn fills_are_keyed_by_account_and_deal_id() {
    use sqlx::Connection;
    let (_dir, path) = temp_db();
    let store = SqliteTradeStore::open_path(&path).await.unwrap();
    let position = open_position(7, Some("pob-1"), 1_000);
    // Written before the store was bound: the binding claims it for its account.
    store
        .record_fill(&opening_fill(900, 7, Some("pob-1"), 1_000), &position)
        .await
        .unwrap();
    store.bind(&demo(111), Timestamp(2_000)).await.unwrap();
    store
        .record_fill(&opening_fill(901, 7, Some("pob-1"), 1_500), &position)
        .await
        .unwrap();
    store.close().await;
    let mut raw = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let keys: Vec<(i64, i64)> =
        sqlx::query_as("SELECT account_id, deal_id FROM fills ORDER BY deal_id")
            .fetch_all(&mut raw)
            .await
            .unwrap();
    assert_eq!(keys, [(111, 900), (111, 901)]);
    let pk: Vec<String> =
        sqlx::query_scalar("SELECT name FROM pragma_table_info('fills') WHERE pk > 0 ORDER BY pk")
            .fetch_all(&mut raw)
            .await
            .unwrap();
    assert_eq!(pk, ["account_id", "deal_id"]);
    raw.close().await.unwrap();
}

#[tokio::test]
async fn the_lease_names_its_holder_and_a_new_holder_learns_of_the_old_one() {
    let (_dir, path) = temp_db();
    let store = SqliteTradeStore::open_path(&path).await.unwrap();
    let first = Lease {
        pid: 4242,
        host: "box-a".to_owned(),
        started_at: Timestamp(1_000),
        command: "run".to_owned(),
    };
    assert_eq!(store.take_lease(&first).await.unwrap(), None);
    assert_eq!(store.lease().await.unwrap(), Some(first.clone()));
    // A second holder (the first was killed: it never released) is told who was there.
    let second = Lease {
        pid: 4343,
        started_at: Timestamp(2_000),
        ..first.clone()
    };
    assert_eq!(
        store.take_lease(&second).await.unwrap(),
        Some(first.clone())
    );
    // Releasing someone else's lease changes nothing; releasing one's own removes it.
    store.release_lease(first.pid).await.unwrap();
    assert_eq!(store.lease().await.unwrap(), Some(second.clone()));
    store.release_lease(second.pid).await.unwrap();
    assert_eq!(store.lease().await.unwrap(), None);
}

async fn conflicting_deal_is_refused(store: Arc<dyn TradeStore>) {
    let position = open_position(7, Some("pob-1"), 1_000);
    let fill = opening_fill(900, 7, Some("pob-1"), 1_000);
    store.record_fill(&fill, &position).await.unwrap();
    // The same deal again (an echo) is recognised.
    assert_eq!(
        store.record_fill(&fill, &position).await.unwrap(),
        persistence::FillRecorded::AlreadyRecorded
    );
    // Another deal under the same id is refused with both rows, and nothing is written.
    let mut other = fill.clone();
    other.price = Price(fill.price.0 + 500_000);
    other.order_id = 55;
    let err = store.record_fill(&other, &position).await.unwrap_err();
    match &err {
        StoreError::ConflictingFill {
            deal_id,
            stored,
            received,
        } => {
            assert_eq!(*deal_id, 900);
            assert!(stored.contains("order 1900"), "{stored}");
            assert!(received.contains("order 55"), "{received}");
        }
        other => panic!("expected ConflictingFill, got {other:?}"),
    }
    assert!(err.to_string().contains("trading stops"), "{err}");
    let fills = store.fills(10).await.unwrap();
    assert_eq!(fills.len(), 1);
    assert_eq!(fills[0].order_id, 1900);
    // Reconciliation meeting that deal id with other content fails as a whole.
    let snap = snapshot(
        vec![broker_position(8, Some("pob-2"), Some("pob-2"))],
        vec![],
        vec![{
            let mut d = opening_fill(900, 8, Some("pob-2"), 2_000);
            d.order_id = 77;
            d
        }],
        10_000,
    );
    let open = store.open_positions().await.unwrap();
    let plan = persistence::plan(&open, &[], &snap, &PREFIX).unwrap();
    let err = store.apply(&plan, Timestamp(10_000)).await.unwrap_err();
    assert!(
        matches!(err, StoreError::ConflictingFill { deal_id: 900, .. }),
        "{err:?}"
    );
    assert_eq!(store.position(domain::PositionId(8)).await.unwrap(), None);
}

#[tokio::test]
async fn a_deal_id_stored_with_other_content_is_refused_not_dropped_sqlite() {
    let (_dir, path) = temp_db();
    conflicting_deal_is_refused(sqlite_store(&path).await).await;
}

#[tokio::test]
async fn a_deal_id_stored_with_other_content_is_refused_not_dropped_memory() {
    conflicting_deal_is_refused(memory_store()).await;
}

async fn findings_wait_for_an_acknowledgement(store: Arc<dyn TradeStore>) {
    // A stored open position the broker no longer has, with no closing deal: check it by hand.
    let position = open_position(7, Some("pob-1"), 1_000);
    store
        .record_fill(&opening_fill(900, 7, Some("pob-1"), 1_000), &position)
        .await
        .unwrap();
    let open = store.open_positions().await.unwrap();
    let plan = persistence::plan(
        &open,
        &[],
        &snapshot(vec![], vec![], vec![], 5_000),
        &PREFIX,
    )
    .unwrap();
    assert_eq!(plan.flagged(), 1);
    store.apply(&plan, Timestamp(5_000)).await.unwrap();
    let waiting = store.open_findings().await.unwrap();
    assert_eq!(waiting.len(), 1);
    let finding = waiting[0].clone();
    assert_eq!(finding.kind, "close_unexplained");
    assert!(
        finding
            .to_string()
            .starts_with(&format!("#{} ", finding.seq))
    );

    // Naming a row that is not a finding acknowledges nothing.
    let err = store
        .acknowledge(
            Acknowledge::Rows(&[finding.seq, finding.seq + 100]),
            Timestamp(6_000),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidRecord(_)), "{err:?}");
    assert!(err.to_string().contains(&format!("#{}", finding.seq + 100)));
    assert_eq!(store.open_findings().await.unwrap().len(), 1);

    let done = store
        .acknowledge(Acknowledge::Rows(&[finding.seq]), Timestamp(6_000))
        .await
        .unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].acknowledged_at, Some(Timestamp(6_000)));
    assert!(store.open_findings().await.unwrap().is_empty());
    // Acknowledging again changes nothing.
    assert!(
        store
            .acknowledge(Acknowledge::All, Timestamp(7_000))
            .await
            .unwrap()
            .is_empty()
    );
    let log = store.audit_log(10).await.unwrap();
    assert_eq!(log[0].acknowledged_at, Some(Timestamp(6_000)));
}

#[tokio::test]
async fn findings_wait_for_an_acknowledgement_sqlite() {
    let (_dir, path) = temp_db();
    findings_wait_for_an_acknowledgement(sqlite_store(&path).await).await;
}

#[tokio::test]
async fn findings_wait_for_an_acknowledgement_memory() {
    findings_wait_for_an_acknowledgement(memory_store()).await;
}

fn wal_of(path: &Path) -> std::path::PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push("-wal");
    p.into()
}

fn shm_of(path: &Path) -> std::path::PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push("-shm");
    p.into()
}

#[tokio::test]
async fn a_clean_stop_leaves_the_file_complete_on_its_own() {
    let (dir, path) = temp_db();
    let store = SqliteTradeStore::open_path(&path).await.unwrap();
    for i in 0..50 {
        store
            .commit_intent(&intent(&format!("pob-{i}"), i))
            .await
            .unwrap();
    }
    assert!(
        std::fs::metadata(wal_of(&path)).unwrap().len() > 0,
        "the writes are in the log before the stop"
    );
    store.shutdown().await.unwrap();
    assert!(
        std::fs::metadata(wal_of(&path)).map_or(0, |m| m.len()) == 0,
        "the log is empty after a clean stop"
    );
    // Only the .db file, copied elsewhere, holds every table and row.
    let copy = dir.path().join("copy.db");
    std::fs::copy(&path, &copy).unwrap();
    let report = inspect_copy(&copy).await.unwrap();
    assert_eq!(report.integrity, "ok");
    assert_eq!(report.rows("order_intents"), Some(50));
    assert_eq!(report.rows("store_identity"), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_beside_a_writer_is_consistent_and_never_overwrites() {
    let (dir, path) = temp_db();
    let writer = SqliteTradeStore::open_path(&path).await.unwrap();
    for i in 0..20 {
        writer
            .commit_intent(&intent(&format!("pob-a{i}"), i))
            .await
            .unwrap();
    }
    // The writer keeps committing while the copy is taken.
    let busy = {
        let writer = writer.clone();
        tokio::spawn(async move {
            for i in 0..200 {
                writer
                    .commit_intent(&intent(&format!("pob-b{i}"), 100 + i))
                    .await
                    .unwrap();
            }
        })
    };
    let reader = SqliteTradeStore::open(SqliteStoreConfig {
        read_only: true,
        ..SqliteStoreConfig::new(&path)
    })
    .await
    .unwrap();
    let target = dir.path().join("backup.db");
    let report = reader.backup_to(&target).await.unwrap();
    busy.await.unwrap();
    assert_eq!(report.integrity, "ok");
    let rows = report.rows("order_intents").unwrap();
    assert!((20..=220).contains(&rows), "{rows}");
    // The copy is complete on its own and opens as a store.
    assert!(!wal_of(&target).exists());
    let copy = SqliteTradeStore::open(SqliteStoreConfig {
        read_only: true,
        ..SqliteStoreConfig::new(&target)
    })
    .await
    .unwrap();
    assert_eq!(
        i64::try_from(copy.intents_in_flight().await.unwrap().len()).unwrap(),
        rows
    );
    // An existing file is never overwritten.
    let before = std::fs::read(&target).unwrap();
    let err = reader.backup_to(&target).await.unwrap_err();
    assert!(
        matches!(err, StoreError::BackupTarget { .. }) && err.to_string().contains("backup.db"),
        "{err}"
    );
    assert_eq!(std::fs::read(&target).unwrap(), before);
    writer.close().await;
}

#[cfg(unix)]
#[tokio::test]
async fn a_read_only_open_writes_nothing_and_works_on_a_file_it_may_not_write() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, path) = temp_db();
    let writer = SqliteTradeStore::open_path(&path).await.unwrap();
    writer.commit_intent(&intent("pob-1", 1)).await.unwrap();
    writer.shutdown().await.unwrap();
    let folder = path.parent().unwrap().to_path_buf();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o555)).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let modified = std::fs::metadata(&path).unwrap().modified().unwrap();

    let reader = SqliteTradeStore::open(SqliteStoreConfig {
        read_only: true,
        ..SqliteStoreConfig::new(&path)
    })
    .await;
    let outcome = match reader {
        Ok(reader) => {
            let n = reader.intents_in_flight().await.map(|v| v.len());
            reader.close().await;
            n
        }
        Err(e) => Err(e),
    };
    // Permission bits do not stop root: what proves "read-only" is that nothing changed.
    let created: Vec<bool> = [wal_of(&path), shm_of(&path)]
        .iter()
        .map(|p| p.exists())
        .collect();
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(outcome.unwrap(), 1);
    assert_eq!(created, [false, false], "no -wal or -shm file was created");
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    assert_eq!(
        std::fs::metadata(&path).unwrap().modified().unwrap(),
        modified
    );
    drop(dir);
}

#[tokio::test]
async fn an_older_store_keeps_its_fills_and_its_unexplained_closes_become_findings() {
    use persistence::MIGRATOR;
    use sqlx::Connection;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
    let (_dir, path) = temp_db();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut conn = SqliteConnection::connect_with(
        &SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true),
    )
    .await
    .unwrap();
    MIGRATOR.run_to(2, &mut conn).await.unwrap();
    for sql in [
        "INSERT INTO positions (position_id, symbol_id, side, volume, entry_price, entry_time, status) \
         VALUES (1, 41, 'buy', 100, 400000000, 1000, 'closed')",
        "INSERT INTO fills (deal_id, order_id, position_id, symbol_id, side, volume, price, time, \
         commission_minor, commission_digits) VALUES (5, 6, 1, 41, 'buy', 100, 400000000, 1000, 0, 2)",
        "INSERT INTO reconcile_audit (at, kind, subject, before, after, why, flagged) \
         VALUES (9, 'close_unexplained', 'position 1', 'open', 'closed', 'check it by hand', 1)",
        "INSERT INTO reconcile_audit (at, kind, subject, before, after, why, flagged) \
         VALUES (9, 'sync_position', 'position 2', 'a', 'b', 'broker wins', 0)",
    ] {
        sqlx::query(sql).execute(&mut conn).await.unwrap();
    }
    conn.close().await.unwrap();

    let store = SqliteTradeStore::open_path(&path).await.unwrap();
    let fills = store.fills(10).await.unwrap();
    assert_eq!(fills.len(), 1);
    assert_eq!(fills[0].deal_id, 5);
    let waiting = store.open_findings().await.unwrap();
    assert_eq!(waiting.len(), 1);
    assert!(waiting[0].check_by_hand && waiting[0].kind == "close_unexplained");
    // Binding claims the older fills for the account; their deal id is now (account, 5).
    store.bind(&demo(111), Timestamp(10)).await.unwrap();
    let position = open_position(1, None, 1_000);
    let mut again = opening_fill(5, 1, None, 1_000);
    again.order_id = 6;
    again.symbol = domain::SymbolId(41);
    again.price = Price(400_000_000);
    assert_eq!(
        store.record_fill(&again, &position).await.unwrap(),
        persistence::FillRecorded::AlreadyRecorded
    );
}
