//! `palm-oil-bot reconcile`, `positions` and `trades` as an operator runs them: the built binary
//! against a simulated broker started in this test (TLS on 127.0.0.1 with its own CA) and a
//! SQLite file in a scratch folder. A position opened at the broker with our label is adopted by
//! `reconcile`, listed by `positions` and `trades` (table and JSON), and its close is recorded on
//! the next run; a dry run writes nothing; missing, corrupt or misconfigured stores and bad
//! credentials get their documented exit status; secrets never appear in any output.

// Test helpers: a panic is how they fail a test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/cli.rs"]
mod cli;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use ctrader_client::{Broker, CTraderClient, CTraderConfig, Credentials, ExtraCa, OrderOutcome};
use ctrader_sim::{
    CertificateSource, MarketHours, SimConfig, SimCredentials, SimHandle, Simulator,
};
use domain::{ClientOrderId, OrderRequest, PositionId, Secret, Side};
use persistence::{SqliteStoreConfig, SqliteTradeStore, TradeStore};

/// Longest any one run of the binary, or any one broker call, may take.
const DEADLINE: Duration = Duration::from_secs(60);

const CLIENT_ID: &str = "store-test-app";
const CLIENT_SECRET: &str = "env-client-secret-4f9e1";
const ACCESS_TOKEN: &str = "env-access-token-c0d7a";
const ACCOUNT_ID: i64 = 7_007_007;
const OUR_ORDER: &str = "pob-310-29000000-L";

/// A simulator on a free loopback port with its CA in `dir`.
async fn start_sim(dir: &Path) -> SimHandle {
    let config = SimConfig {
        certificates: CertificateSource::Directory(dir.join("certs")),
        market_hours: MarketHours::AlwaysOpen,
        history: Duration::from_secs(3600),
        credentials: SimCredentials {
            client_id: CLIENT_ID.to_owned(),
            client_secret: Secret::new(CLIENT_SECRET),
            access_token: Secret::new(ACCESS_TOKEN),
            refresh_token: Secret::new("env-refresh-token-unused"),
            account_id: ACCOUNT_ID,
        },
        ..SimConfig::default()
    };
    Simulator::start(config)
        .await
        .expect("the simulator starts")
}

/// A client of the simulator (standing in for the bot, or for a person in the cTrader app).
async fn client(sim: &SimHandle) -> CTraderClient {
    let mut config = CTraderConfig::new(
        "localhost",
        sim.local_addr().port(),
        Credentials {
            client_id: CLIENT_ID.to_owned(),
            client_secret: Secret::new(CLIENT_SECRET),
            access_token: Secret::new(ACCESS_TOKEN),
            refresh_token: None,
        },
        ACCOUNT_ID,
    );
    config.extra_ca = Some(ExtraCa::PemFile(sim.ca_cert_path().unwrap().to_path_buf()));
    tokio::time::timeout(DEADLINE, CTraderClient::connect(config))
        .await
        .expect("connect in time")
        .expect("the client authenticates")
}

/// Opens a market position at the broker with `label`; returns its id.
async fn open_position(client: &CTraderClient, order_id: &str, label: &str) -> PositionId {
    let spec = tokio::time::timeout(DEADLINE, client.resolve_symbol(&["PALMOIL".to_owned()]))
        .await
        .expect("symbol in time")
        .expect("palm oil is listed");
    let order = OrderRequest {
        client_order_id: ClientOrderId::new(order_id).unwrap(),
        symbol: spec.id,
        side: Side::Buy,
        volume: spec.min_volume,
        relative_stop_loss: None,
        relative_take_profit: None,
        label: label.to_owned(),
        position_to_close: None,
    };
    let outcome = tokio::time::timeout(DEADLINE, client.place_order(&order))
        .await
        .expect("order answered in time")
        .expect("the order is answered");
    match outcome {
        OrderOutcome::Filled(fill) => fill.fill.position_id,
        OrderOutcome::Rejected(r) => panic!("order rejected: {r:?}"),
    }
}

/// The environment `run` would get for this simulator and database.
fn bot_env(sim: &SimHandle, db: &Path) -> Vec<(String, String)> {
    [
        ("CTRADER_HOST", "localhost".to_owned()),
        ("CTRADER_PORT", sim.local_addr().port().to_string()),
        (
            "CTRADER_CA_FILE",
            sim.ca_cert_path().unwrap().display().to_string(),
        ),
        ("CTRADER_CLIENT_ID", CLIENT_ID.to_owned()),
        ("CTRADER_CLIENT_SECRET", CLIENT_SECRET.to_owned()),
        ("CTRADER_ACCESS_TOKEN", ACCESS_TOKEN.to_owned()),
        ("CTRADER_ACCOUNT_ID", ACCOUNT_ID.to_string()),
        ("DATABASE_URL", format!("sqlite://{}", db.display())),
        ("RUST_LOG", "debug".to_owned()),
        ("LOG_FORMAT", "json".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Runs the binary (off the runtime, so the simulator keeps serving) with exactly `env`.
async fn bot(dir: &Path, args: &[&str], env: &[(String, String)]) -> Output {
    let (dir, args, env) = (
        dir.to_path_buf(),
        args.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>(),
        env.to_vec(),
    );
    tokio::task::spawn_blocking(move || run_bounded(&dir, &args, &env))
        .await
        .unwrap()
}

fn run_bounded(dir: &Path, args: &[String], env: &[(String, String)]) -> Output {
    let output = cli::run_bot(dir, args, env, DEADLINE);
    let all = format!("{}{}", text(&output.stdout), text(&output.stderr));
    for secret in [CLIENT_SECRET, ACCESS_TOKEN] {
        assert!(
            !all.contains(secret),
            "palm-oil-bot {args:?} printed a secret"
        );
    }
    output
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ok(output: &Output) -> String {
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_str(&ok(output)).expect("valid JSON on stdout")
}

async fn read_only(db: &Path) -> SqliteTradeStore {
    let mut config = SqliteStoreConfig::new(db);
    config.read_only = true;
    SqliteTradeStore::open(config)
        .await
        .expect("the store opens")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_adopts_our_position_and_positions_and_trades_list_it() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim(dir.path()).await;
    let broker = client(&sim).await;
    let ours = open_position(&broker, OUR_ORDER, OUR_ORDER).await;
    let foreign = open_position(&broker, "manual-1", "manual-1").await;
    let db_dir = dir.path().join("data");
    let db = db_dir.join("bot.db");
    let env = bot_env(&sim, &db);

    // Nothing stored yet: the listings refuse clearly and create nothing.
    for command in ["positions", "trades"] {
        let out = bot(dir.path(), &[command], &env).await;
        assert_eq!(out.status.code(), Some(2), "{command}");
        let err = text(&out.stderr);
        assert!(
            err.contains("no database") && err.contains("bot.db"),
            "{err}"
        );
        assert!(text(&out.stdout).is_empty());
    }
    // A dry run with no database plans against an empty store and creates nothing.
    let report = json(&bot(dir.path(), &["reconcile", "--dry-run", "--json"], &env).await);
    assert_eq!(report["applied"], false);
    assert!(!db_dir.exists(), "a dry run created {}", db_dir.display());

    // With an (empty) database: the dry run shows the adoption but writes nothing.
    drop(SqliteTradeStore::open_path(&db).await.unwrap());
    let report = json(&bot(dir.path(), &["reconcile", "--dry-run", "--json"], &env).await);
    assert_eq!(report["applied"], false);
    let corrections = report["corrections"].as_array().unwrap();
    assert_eq!(corrections.len(), 1, "{report:#}");
    assert_eq!(corrections[0]["kind"], "adopt_position", "{report:#}");
    assert!(
        corrections[0]["subject"]
            .as_str()
            .unwrap()
            .contains(&ours.0.to_string()),
        "{report:#}"
    );
    let foreign_rows = report["foreign_positions"].as_array().unwrap();
    assert_eq!(foreign_rows.len(), 1);
    assert_eq!(foreign_rows[0]["position_id"], foreign.0);
    {
        let store = read_only(&db).await;
        assert!(store.audit_log(100).await.unwrap().is_empty());
        assert!(store.open_positions().await.unwrap().is_empty());
        assert!(store.fills(100).await.unwrap().is_empty());
    }

    // Applied: the position is adopted, with its audit row; someone else's is only reported.
    let table = ok(&bot(dir.path(), &["reconcile"], &env).await);
    assert!(table.contains("applied"), "{table}");
    assert!(table.contains(&ours.0.to_string()), "{table}");
    assert!(table.contains("Not ours"), "{table}");
    {
        let store = read_only(&db).await;
        let audit = store.audit_log(100).await.unwrap();
        assert_eq!(audit.len(), 1, "{audit:?}");
        let open = store.open_positions().await.unwrap();
        assert_eq!(
            open.iter().map(|p| p.id).collect::<Vec<_>>(),
            vec![ours],
            "only ours is stored"
        );
    }

    // Listing is safe while the bot holds the database open for writing.
    let running_bot = SqliteTradeStore::open_path(&db).await.unwrap();
    let table = ok(&bot(dir.path(), &["positions"], &env).await);
    assert!(
        table.contains("POSITION") && table.contains(&ours.0.to_string()),
        "{table}"
    );
    assert!(table.contains(OUR_ORDER), "{table}");
    assert!(!table.contains(&foreign.0.to_string()), "{table}");
    let listed = json(&bot(dir.path(), &["positions", "--json", "--open"], &env).await);
    let rows = listed["positions"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["position_id"], ours.0);
    assert_eq!(rows[0]["status"], "open");
    assert_eq!(rows[0]["client_order_id"], OUR_ORDER);
    let none = ok(&bot(dir.path(), &["positions", "--closed"], &env).await);
    assert!(none.contains("No positions stored"), "{none}");
    let trades = json(&bot(dir.path(), &["trades", "--json"], &env).await);
    let rows = trades["trades"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{trades:#}");
    assert_eq!(rows[0]["position_id"], ours.0);
    assert_eq!(rows[0]["effect"], "open");

    drop(running_bot);

    // Closed at the broker while the bot was away: the next reconcile records how.
    let volume = broker
        .open_state()
        .await
        .unwrap()
        .positions
        .iter()
        .find(|p| p.id == ours)
        .unwrap()
        .volume;
    tokio::time::timeout(DEADLINE, broker.close_position(ours, volume))
        .await
        .expect("close answered in time")
        .expect("the close is executed");
    let report = json(&bot(dir.path(), &["reconcile", "--json"], &env).await);
    assert_eq!(report["applied"], true);
    assert_eq!(
        report["corrections"][0]["kind"], "close_position",
        "{report:#}"
    );
    let closed = json(&bot(dir.path(), &["positions", "--json", "--closed"], &env).await);
    let rows = closed["positions"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["position_id"], ours.0);
    assert!(rows[0]["exit_price"].is_string() && rows[0]["pnl"].is_string());
    let trades = ok(&bot(dir.path(), &["trades", "--limit", "1"], &env).await);
    assert!(trades.contains("close"), "{trades}");
    let trades = json(&bot(dir.path(), &["trades", "--json"], &env).await);
    assert_eq!(trades["trades"].as_array().unwrap().len(), 2, "{trades:#}");

    // Nothing left to correct: a clean reconcile says so.
    let report = json(&bot(dir.path(), &["reconcile", "--json"], &env).await);
    assert!(
        report["corrections"].as_array().unwrap().is_empty(),
        "{report:#}"
    );

    broker.shutdown();
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_and_stores_that_cannot_work_get_their_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim(dir.path()).await;
    let db = dir.path().join("bot.db");
    let env = bot_env(&sim, &db);

    // Missing secrets: every one is named, none is printed, nothing is created.
    let partial: Vec<_> = env
        .iter()
        .filter(|(k, _)| k != "CTRADER_CLIENT_ID" && k != "CTRADER_ACCESS_TOKEN")
        .cloned()
        .collect();
    let out = bot(dir.path(), &["reconcile"], &partial).await;
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("CTRADER_CLIENT_ID") && err.contains("CTRADER_ACCESS_TOKEN"),
        "{err}"
    );
    assert!(!db.exists());

    // Refused by the broker: fail closed with the reason (and still no secret shown).
    let mut wrong = env.clone();
    for (k, v) in &mut wrong {
        if k == "CTRADER_CLIENT_SECRET" {
            *v = "a-wrong-client-secret".to_owned();
        }
    }
    let out = bot(dir.path(), &["reconcile"], &wrong).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("reconciliation failed"));
    assert!(!text(&out.stderr).contains("a-wrong-client-secret"));

    // A host off the allow-list of official hosts with a private CA is a setting problem.
    let mut official = env.clone();
    for (k, v) in &mut official {
        if k == "CTRADER_HOST" {
            *v = "demo.ctraderapi.com".to_owned();
        }
    }
    let out = bot(dir.path(), &["reconcile", "--dry-run"], &official).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("CTRADER_CA_FILE"));

    // A file that is not a database is refused and left untouched.
    let garbage = b"this is not a database, it is a shopping list\n".repeat(100);
    std::fs::write(&db, &garbage).unwrap();
    for args in [
        &["positions"][..],
        &["trades", "--json"][..],
        &["reconcile", "--dry-run"][..],
    ] {
        let out = bot(dir.path(), args, &env).await;
        assert_eq!(
            out.status.code(),
            Some(3),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains("not a palm-oil-bot database"),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(text(&out.stdout).is_empty());
    }
    assert_eq!(std::fs::read(&db).unwrap(), garbage);

    // Bad listing flags are usage errors.
    for args in [
        &["positions", "--open", "--closed"][..],
        &["trades", "--limit", "0"][..],
    ] {
        let out = bot(dir.path(), args, &env).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    // A DATABASE_URL that names no file.
    let mut memory = env.clone();
    for (k, v) in &mut memory {
        if k == "DATABASE_URL" {
            *v = "sqlite::memory:".to_owned();
        }
    }
    let out = bot(dir.path(), &["positions"], &memory).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("DATABASE_URL"));

    sim.shutdown().await;
}
