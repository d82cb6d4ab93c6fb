//! The store as an unattended operator relies on it, end to end with the built binary against the
//! simulator: it belongs to one account (another account's start is refused, `--new-store` moves
//! it aside), one process trades it (a second `run` exits 3 naming the holder; a killed holder's
//! lock is taken over), a deal id stored with other content stops trading naming both rows, a
//! finding to check by hand keeps trading off until `acknowledge`, `backup` copies it while the bot
//! runs, and `positions`/`trades` read a file they may not write without writing anything.

// Test code: a broken expectation panics, which is how the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use common::{Bot, ORDER_SENT, RECONCILED, Rng, World};
use ctrader_sim::{FaultPlan, PALM_OIL_SYMBOL_ID, SimCredentials};
use domain::{
    ClientOrderId, Clock, Fill, Money, Position, PositionId, PositionStatus, Price, Side, SymbolId,
    SystemClock, Timestamp, Volume,
};
use persistence::{SqliteTradeStore, TradeStore};

const SEED: u64 = 0x5704_E013;
const RACE_REPETITIONS: usize = 20;

/// Runs `palm-oil-bot ARGS` with the world's bot environment (plus `changes`) to completion.
fn run_command(world: &World, args: &[&str], changes: &[(&str, &str)]) -> Output {
    let mut env = world.bot_env();
    for (k, v) in changes {
        env.retain(|(name, _)| name != k);
        env.push(((*k).to_owned(), (*v).to_owned()));
    }
    let mut cmd = std::process::Command::new(common::BIN);
    cmd.env_clear().current_dir(world.dir.path()).args(args);
    for (k, v) in &env {
        cmd.env(k, v);
    }
    let child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
            panic!("palm-oil-bot {args:?} did not finish within a minute");
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Opens a store file read-write (the bot is not running) and runs `work` on it.
fn with_store<T>(world: &World, path: &Path, work: impl AsyncFnOnce(&SqliteTradeStore) -> T) -> T {
    world.rt.block_on(async {
        let store = SqliteTradeStore::open_path(path).await.unwrap();
        let out = work(&store).await;
        store.close().await;
        out
    })
}

/// Waits until the store holds something `ready` accepts, or fails after `within`.
fn wait_for_store(
    world: &World,
    bot: &Bot,
    within: Duration,
    what: &str,
    ready: impl Fn(&World) -> bool,
) {
    let deadline = Instant::now() + within;
    while !ready(world) {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {within:?}; the bot's last lines:\n{}",
            bot.transcript()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stored_open_positions(world: &World) -> usize {
    world
        .read_store(async |s| s.open_positions().await.map(|p| p.len()).unwrap_or(0))
        .unwrap_or(0)
}

fn stored_fills(world: &World) -> usize {
    world
        .read_store(async |s| s.fills(usize::MAX).await.map(|f| f.len()).unwrap_or(0))
        .unwrap_or(0)
}

#[test]
fn a_database_of_another_account_is_refused_and_new_store_moves_it_aside() {
    // Account A trades until its store holds an open position, then stops cleanly.
    let a = World::start(240.0, 3, FaultPlan::default());
    let mut bot = a.spawn_bot(&[]);
    bot.expect_message(0, RECONCILED, Duration::from_secs(30));
    wait_for_store(&a, &bot, Duration::from_secs(60), "an open position", |w| {
        stored_open_positions(w) > 0
    });
    assert_eq!(bot.terminate(Duration::from_secs(20)).code(), Some(0));
    let a_positions = stored_open_positions(&a);

    // The same file against account B (the reported case: it logged close_unexplained, then
    // "trading enabled"): refused, naming both, before anything is reconciled.
    let b_creds = SimCredentials {
        account_id: 55_667_788,
        ..SimCredentials::default()
    };
    let mut b = World::start_with(240.0, 4, FaultPlan::default(), None, b_creds);
    b.db = a.db.clone();
    let mut refused = b.spawn_bot(&[]);
    let status = refused.wait_exit(Duration::from_secs(30));
    let log = refused.transcript();
    assert_eq!(status.code(), Some(3), "{log}");
    assert!(
        log.contains("account 44556677 on 127.0.0.1")
            && log.contains("account 55667788 on 127.0.0.1")
            && log.contains("--new-store"),
        "the refusal names both identities and the way out: {log}"
    );
    assert!(
        !log.contains("close_unexplained") && !log.contains(RECONCILED),
        "{log}"
    );
    assert_eq!(
        stored_open_positions(&a),
        a_positions,
        "nothing was changed"
    );

    // --new-store moves A's file aside (nothing deleted) and B trades on a fresh one.
    let mut fresh = Bot::spawn(b.dir.path(), &["run", "--new-store"], &b.bot_env());
    fresh.expect_message(0, RECONCILED, Duration::from_secs(30));
    let log = fresh.transcript();
    assert!(!log.contains("close_unexplained"), "{log}");
    assert_eq!(fresh.terminate(Duration::from_secs(20)).code(), Some(0));
    let moved: Vec<PathBuf> = std::fs::read_dir(a.dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with("Z.bak"))
        .collect();
    assert_eq!(moved.len(), 1, "one file moved aside: {moved:?}");
    assert!(
        log.contains(&moved[0].display().to_string()),
        "it says where: {log}"
    );
    let old = with_store(&a, &moved[0], async |s| {
        (
            s.identity().await.unwrap(),
            s.open_positions().await.unwrap().len(),
        )
    });
    assert_eq!(old.0.map(|i| i.account_id), Some(44_556_677));
    assert_eq!(old.1, a_positions, "the old account's records are intact");
    let new = with_store(&a, &a.db, async |s| s.identity().await.unwrap());
    assert_eq!(new.map(|i| i.account_id), Some(55_667_788));
}

#[test]
fn two_runs_started_together_only_one_trades() {
    let mut world = World::start(240.0, 5, FaultPlan::default());
    let mut rng = Rng::new(SEED);
    let base = world.db.clone();
    for rep in 0..RACE_REPETITIONS {
        world.db = base.with_file_name(format!("race-{rep}.db"));
        let gap = rng.millis(0, 40);
        let first = world.spawn_bot(&[]);
        std::thread::sleep(gap);
        let second = world.spawn_bot(&[]);
        let mut bots = [first, second];
        // One of them is refused quickly; the other trades.
        let deadline = Instant::now() + Duration::from_secs(30);
        let loser = loop {
            if let Some(i) = bots
                .iter_mut()
                .position(|b| b.wait_exit_within(Duration::from_millis(50)).is_some())
            {
                break i;
            }
            assert!(
                Instant::now() < deadline,
                "rep {rep}: neither process was refused:\n{}\n---\n{}",
                bots[0].transcript(),
                bots[1].transcript()
            );
        };
        let winner = 1 - loser;
        let status = bots[loser].wait_exit(Duration::from_secs(5));
        let log = bots[loser].transcript();
        assert_eq!(status.code(), Some(3), "rep {rep} (gap {gap:?}): {log}");
        assert!(
            log.contains(&format!("palm-oil-bot run (pid {}", bots[winner].pid())),
            "rep {rep}: the refusal names the holder: {log}"
        );
        assert!(
            !log.contains(RECONCILED) && !log.contains(ORDER_SENT),
            "rep {rep}: the refused process never traded: {log}"
        );
        bots[winner].expect_message(0, RECONCILED, Duration::from_secs(30));
        assert_eq!(
            bots[winner].terminate(Duration::from_secs(20)).code(),
            Some(0),
            "rep {rep}: {}",
            bots[winner].transcript()
        );
        // The lease named the winner and was released at its clean stop.
        let lease = world
            .read_store(async |s| s.lease().await.unwrap())
            .unwrap();
        assert_eq!(lease, None, "rep {rep}");
    }
}

#[test]
fn a_run_started_later_is_refused_and_a_killed_holder_is_taken_over() {
    let world = World::start(240.0, 6, FaultPlan::default());
    let mut holder = world.spawn_bot(&[]);
    holder.expect_message(0, RECONCILED, Duration::from_secs(30));
    // Started later (the reported case: it reconciled and enabled orders): refused.
    let mut later = world.spawn_bot(&[]);
    let status = later.wait_exit(Duration::from_secs(30));
    let log = later.transcript();
    assert_eq!(status.code(), Some(3), "{log}");
    assert!(
        log.contains(&format!("palm-oil-bot run (pid {}", holder.pid()))
            && log.contains("bot.db.lock"),
        "{log}"
    );
    assert!(!log.contains(RECONCILED), "{log}");
    let lease = world
        .read_store(async |s| s.lease().await.unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(lease.pid, holder.pid());
    assert_eq!(lease.command, "run");
    // The holder keeps trading.
    holder.expect_message(0, ORDER_SENT, Duration::from_secs(60));

    // Killed, its lock dies with it: the next start takes over without help, and says whose.
    let killed = holder.pid();
    holder.kill();
    let mut next = world.spawn_bot(&[]);
    next.expect_message(0, RECONCILED, Duration::from_secs(30));
    assert!(
        next.transcript().contains(&format!(
            "took over the store from palm-oil-bot run (pid {killed}"
        )),
        "{}",
        next.transcript()
    );
    world.assert_store_matches_broker(Duration::from_secs(8), "after the takeover", &next);
    assert_eq!(next.terminate(Duration::from_secs(20)).code(), Some(0));
    assert_eq!(
        world
            .read_store(async |s| s.lease().await.unwrap())
            .unwrap(),
        None
    );
}

fn planted_position(id: i64, now: Timestamp, status: PositionStatus) -> Position {
    let closed = status == PositionStatus::Closed;
    Position {
        id: PositionId(id),
        symbol: SymbolId(PALM_OIL_SYMBOL_ID),
        side: Side::Buy,
        volume: Volume(100),
        entry_price: Price(400_000_000),
        entry_time: now,
        stop_loss: None,
        take_profit: None,
        label: Some("pob-1-1-L".to_owned()),
        client_order_id: Some(ClientOrderId::new("pob-1-1-L").unwrap()),
        status,
        exit_price: closed.then_some(Price(400_100_000)),
        exit_time: closed.then_some(now),
        pnl: closed.then_some(Money::new(100, 2)),
        close_reason: None,
    }
}

fn planted_fill(deal_id: i64, position: i64, now: Timestamp) -> Fill {
    Fill {
        deal_id,
        order_id: 1,
        position_id: PositionId(position),
        client_order_id: None,
        symbol: SymbolId(PALM_OIL_SYMBOL_ID),
        side: Side::Buy,
        volume: Volume(100),
        price: Price(400_000_000),
        time: now,
        commission: Money::new(0, 2),
        close: None,
    }
}

#[test]
fn a_deal_id_stored_with_other_content_stops_trading_naming_both_rows() {
    let world = World::start(240.0, 7, FaultPlan::default());
    // Another account's history in the file: its deal ids are the ones this broker hands out.
    let now = SystemClock.now();
    with_store(&world, &world.db, async |s| {
        let closed = planted_position(
            123,
            Timestamp(now.0 - 10 * Timestamp::DAY_MS),
            PositionStatus::Closed,
        );
        for deal in 700_001..700_021 {
            s.record_fill(&planted_fill(deal, 123, closed.entry_time), &closed)
                .await
                .unwrap();
        }
    });
    let mut bot = world.spawn_bot(&[]);
    bot.expect_message(0, RECONCILED, Duration::from_secs(30));
    let status = bot.wait_exit(Duration::from_secs(90));
    let log = bot.transcript();
    assert_eq!(status.code(), Some(1), "trading stopped: {log}");
    assert!(
        log.contains("deal 700001 is already stored with different content")
            && log.contains("stored [deal 700001 order 1 position 123")
            && log.contains("received [deal 700001 order 800001"),
        "both rows are logged: {log}"
    );
    // Nothing stored was overwritten.
    let fill = world
        .read_store(async |s| s.fills(usize::MAX).await.unwrap())
        .unwrap()
        .into_iter()
        .find(|f| f.deal_id == 700_001)
        .unwrap();
    assert_eq!(fill.order_id, 1);
}

#[test]
fn a_finding_to_check_by_hand_keeps_trading_off_until_acknowledged() {
    let world = World::start(240.0, 8, FaultPlan::default());
    // A position of ours the broker no longer has, with no closing deal: check it by hand.
    let now = SystemClock.now();
    with_store(&world, &world.db, async |s| {
        let open = planted_position(
            424_242,
            Timestamp(now.0 - Timestamp::DAY_MS),
            PositionStatus::Open,
        );
        s.record_fill(&planted_fill(1, 424_242, open.entry_time), &open)
            .await
            .unwrap();
    });
    // Reported: "close_unexplained … check it by hand", then "trading enabled".
    let mut bot = world.spawn_bot(&[]);
    let status = bot.wait_exit(Duration::from_secs(30));
    let log = bot.transcript();
    assert_eq!(status.code(), Some(3), "{log}");
    assert!(
        log.contains("close_unexplained") && log.contains("palm-oil-bot acknowledge"),
        "{log}"
    );
    assert!(
        !log.contains(RECONCILED) && !log.contains(ORDER_SENT),
        "{log}"
    );
    // Still refused at the next start: the finding waits for a person, not for a restart.
    let mut again = world.spawn_bot(&[]);
    assert_eq!(again.wait_exit(Duration::from_secs(30)).code(), Some(3));
    assert!(!again.transcript().contains(RECONCILED));

    let listed = run_command(&world, &["acknowledge"], &[]);
    let out = text(&listed.stdout);
    assert_eq!(listed.status.code(), Some(0), "{}", text(&listed.stderr));
    assert!(
        out.contains("#1 ") && out.contains("position 424242"),
        "{out}"
    );
    let wrong = run_command(&world, &["acknowledge", "99"], &[]);
    assert_eq!(wrong.status.code(), Some(2), "{}", text(&wrong.stderr));
    assert!(text(&wrong.stderr).contains("#99"));
    let done = run_command(&world, &["acknowledge", "--all"], &[]);
    let out = text(&done.stdout);
    assert_eq!(done.status.code(), Some(0), "{}", text(&done.stderr));
    assert!(
        out.contains("acknowledged #1 ") && out.contains("trading may resume"),
        "{out}"
    );

    let mut bot = world.spawn_bot(&[]);
    bot.expect_message(0, RECONCILED, Duration::from_secs(30));
    assert_eq!(bot.terminate(Duration::from_secs(20)).code(), Some(0));
}

fn wal_and_shm(db: &Path) -> [bool; 2] {
    ["-wal", "-shm"].map(|suffix| {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        Path::new(&p).exists()
    })
}

#[test]
fn backup_runs_beside_the_bot_and_read_only_commands_write_nothing() {
    let world = World::start(240.0, 9, FaultPlan::default());
    let mut bot = world.spawn_bot(&[]);
    bot.expect_message(0, RECONCILED, Duration::from_secs(30));
    wait_for_store(&world, &bot, Duration::from_secs(60), "a fill", |w| {
        stored_fills(w) > 0
    });

    // A consistent copy while it trades.
    let target = world.dir.path().join("backups").join("copy.db");
    std::fs::create_dir(target.parent().unwrap()).unwrap();
    let out = run_command(&world, &["backup", target.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("integrity ok"),
        "{}",
        text(&out.stdout)
    );
    let copy = world
        .rt
        .block_on(persistence::inspect_copy(&target))
        .unwrap();
    assert_eq!(copy.integrity, "ok");
    assert_eq!(copy.rows("store_identity"), Some(1));
    assert!(copy.rows("fills").is_some_and(|n| n >= 1), "{copy:?}");
    assert!(
        copy.rows("order_intents").is_some_and(|n| n >= 1),
        "{copy:?}"
    );
    // Never over an existing file.
    let again = run_command(&world, &["backup", target.to_str().unwrap()], &[]);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again.stderr));
    assert!(text(&again.stderr).contains("never overwrites"));
    assert_eq!(bot.terminate(Duration::from_secs(20)).code(), Some(0));

    // A file the commands may only read: 444 in a 555 folder. Root ignores those bits, so what
    // proves the commands only read is that nothing beside or in the file changed.
    use std::os::unix::fs::PermissionsExt;
    let folder = world.dir.path().join("readonly");
    std::fs::create_dir(&folder).unwrap();
    let db = folder.join("bot.db");
    std::fs::copy(&world.db, &db).unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o444)).unwrap();
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o555)).unwrap();
    let bytes = std::fs::read(&db).unwrap();
    let modified = std::fs::metadata(&db).unwrap().modified().unwrap();
    let url = format!("sqlite://{}", db.display());
    let positions = run_command(&world, &["positions", "--json"], &[("DATABASE_URL", &url)]);
    let trades = run_command(&world, &["trades", "--json"], &[("DATABASE_URL", &url)]);
    let created = wal_and_shm(&db);
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(
        positions.status.code(),
        Some(0),
        "{}",
        text(&positions.stderr)
    );
    assert_eq!(trades.status.code(), Some(0), "{}", text(&trades.stderr));
    let listed: serde_json::Value = serde_json::from_slice(&trades.stdout).unwrap();
    assert!(listed.to_string().contains("deal_id"), "{listed}");
    assert_eq!(created, [false, false], "no -wal or -shm file was created");
    assert_eq!(
        std::fs::read(&db).unwrap(),
        bytes,
        "the file's bytes are unchanged"
    );
    assert_eq!(
        std::fs::metadata(&db).unwrap().modified().unwrap(),
        modified
    );
}
