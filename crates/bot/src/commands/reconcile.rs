//! `reconcile`: compare the broker's view with the store once, as `run` does at start, and print
//! what was (or, with `--dry-run`, would be) corrected.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use ctrader_client::{BrokerError, CTraderClient, CTraderConfig};
use domain::{Clock, SystemClock};
use persistence::{AuditEntry, ReconcileReport, SqliteTradeStore, StoreIdentity, TradeStore};

use crate::commands::positions::{StoreAccessError, open_read_only};
use crate::commands::run::{TradingSetup, broker_config, prepare_trading, store_identity};
use crate::config::Config;
use crate::reconcile::{UnseenOrders, reconcile_and_report};
use crate::runtime::{EXIT_CONFIG, EXIT_OK, EXIT_REFUSED, EXIT_RUNTIME};
use crate::store::{StoreRefusal, StoreRequest, TradingStore, database_url, open_trading_store};
use crate::token_vault::{TokenOrigin, TokenVault};

/// Options of `reconcile`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReconcileArgs {
    /// Plan only: open the database read-only and write nothing (safe while the bot runs).
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Why `reconcile` stopped, with its exit status.
#[derive(Debug, thiserror::Error)]
enum Failure {
    /// Settings, credentials or the allow-list: the operator must fix them (exit 2).
    #[error("{0}")]
    Config(String),
    /// Reconciliation could not finish (broker refused, store unusable, unsafe plan): exit 3.
    #[error("{0}")]
    Refused(String),
    /// A transient failure (broker unreachable) or a local one: exit 1.
    #[error("{0}")]
    Runtime(String),
}

impl Failure {
    const fn exit_code(&self) -> u8 {
        match self {
            Failure::Config(_) => EXIT_CONFIG,
            Failure::Refused(_) => EXIT_REFUSED,
            Failure::Runtime(_) => EXIT_RUNTIME,
        }
    }
}

/// Runs `reconcile`: 0 with the report printed; 2 for configuration problems; 3 when
/// reconciliation could not finish (fail closed); 1 when the broker was unreachable.
#[allow(clippy::print_stdout, clippy::print_stderr)] // the report is this command's output
pub fn run(config_path: Option<&Path>, args: &ReconcileArgs) -> ExitCode {
    let TradingSetup {
        config,
        credentials,
        ..
    } = match prepare_trading(config_path) {
        Ok(setup) => setup,
        Err(code) => return ExitCode::from(code),
    };
    let broker = broker_config(&config, &credentials);
    let identity = store_identity(
        &config,
        &credentials,
        crate::live_guard::expected_live(&config.broker),
    );
    let tokio = match crate::runtime::async_runtime(crate::runtime::RuntimeKind::OneShot) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match tokio.block_on(reconcile_once(&config, broker, identity, args.dry_run)) {
        Ok((report, open)) => {
            if !open.is_empty() {
                eprintln!(
                    "{} finding(s) to check by hand keep trading off until acknowledged (`palm-oil-bot acknowledge`):",
                    open.len()
                );
                for finding in &open {
                    eprintln!("  {finding}");
                }
            }
            let text = if args.json {
                match serde_json::to_string_pretty(&report) {
                    Ok(json) => format!("{json}\n"),
                    Err(e) => {
                        eprintln!("cannot encode the report as JSON: {e}");
                        return ExitCode::from(EXIT_RUNTIME);
                    }
                }
            } else {
                report.to_string()
            };
            print!("{text}");
            ExitCode::from(EXIT_OK)
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(e.exit_code())
        }
    }
}

async fn reconcile_once(
    config: &Config,
    broker: CTraderConfig,
    identity: StoreIdentity,
    dry_run: bool,
) -> Result<(ReconcileReport, Vec<AuditEntry>), Failure> {
    let clock: Arc<dyn Clock> = match config.broker.simulator_clock {
        Some(simulated) => Arc::new(simulated),
        None => Arc::new(SystemClock),
    };
    let (store, held) = store_for(config, identity, &SystemClock, dry_run).await?;
    let outcome = reconcile_with(config, broker, &store, &clock, dry_run).await;
    let open = match &outcome {
        Ok(_) => store.open_findings().await.unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    if let Some(held) = held
        && let Err(e) = held.close().await
    {
        tracing::warn!("the store did not close cleanly: {e}");
    }
    outcome.map(|report| (report, open))
}

async fn reconcile_with(
    config: &Config,
    broker: CTraderConfig,
    shared: &Arc<dyn TradeStore>,
    clock: &Arc<dyn Clock>,
    dry_run: bool,
) -> Result<ReconcileReport, Failure> {
    let store: &dyn TradeStore = shared.as_ref();
    // The newest token pair: the stored one once a refresh replaced the environment's.
    let vault = Arc::new(
        TokenVault::new(
            Arc::clone(shared),
            broker.account_id,
            &broker.credentials.client_secret,
        )
        .map_err(Failure::Runtime)?,
    );
    let start = vault
        .start_tokens(
            &broker.credentials.access_token,
            broker.credentials.refresh_token.as_ref(),
        )
        .await
        .map_err(Failure::Runtime)?;
    let mut broker = broker;
    broker.credentials.access_token = start.access;
    // A dry run cannot store a refreshed pair, and a refresh spends the refresh token: it never
    // refreshes (an expired access token is then an error naming the problem).
    broker.credentials.refresh_token = if dry_run { None } else { start.refresh };
    if !dry_run && start.origin == TokenOrigin::Stored {
        broker.token_expiry = start.expiry;
    }
    let refresh_answer_wait = crate::token_vault::refresh_answer_wait(&broker.timing);
    let client = CTraderClient::connect_with(broker, clock.clone(), vault.clone())
        .await
        .map_err(|e| broker_failure(&e))?;
    let outcome = reconcile_and_report(
        &client,
        store,
        clock.as_ref(),
        &config.label_prefix,
        !dry_run,
        // Run by a person with the bot stopped: an order the broker shows no trace of is
        // concluded lost now; should it arrive after all, the next reconciliation adopts it.
        &mut UnseenOrders::new(Duration::ZERO),
    )
    .await;
    client.shutdown();
    // A refresh the session started is kept before the command ends, or its pair is lost.
    vault.settle(refresh_answer_wait).await;
    match outcome {
        Ok((_, report)) => Ok(report),
        Err(e) => Err(Failure::Refused(e.to_string())),
    }
}

/// The store to reconcile against. Applying takes the store as `run` does (its lock, bound to
/// this account), so it is refused beside a running bot. A dry run opens it read-only (nothing
/// can be written, and it is safe beside a running bot), refuses a store bound to another
/// account, and with no database yet plans against an empty store.
async fn store_for(
    config: &Config,
    identity: StoreIdentity,
    clock: &dyn Clock,
    dry_run: bool,
) -> Result<(Arc<dyn TradeStore>, Option<TradingStore>), Failure> {
    if !dry_run {
        let request = StoreRequest {
            url: &config.database_url,
            identity,
            command: "reconcile",
            new_store: false,
        };
        return match open_trading_store(&request, clock).await {
            Ok(held) => Ok((held.shared(), Some(held))),
            Err(e @ StoreRefusal::Setting(_)) => Err(Failure::Config(e.to_string())),
            Err(e) => Err(Failure::Refused(e.to_string())),
        };
    }
    let url = database_url(
        &config.database_url,
        identity.live,
        Some(identity.account_id),
    )
    .map_err(|e| Failure::Config(format!("DATABASE_URL: {e}")))?;
    match open_read_only(&url).await {
        Ok(store) => match store.identity().await {
            Ok(Some(bound)) if bound != identity => Err(Failure::Refused(format!(
                "database {} belongs to {bound}, not to {identity}",
                store.path().display()
            ))),
            Ok(_) => Ok((Arc::new(store), None)),
            Err(e) => Err(Failure::Refused(format!("cannot read the store: {e}"))),
        },
        Err(StoreAccessError::Missing(path)) => {
            tracing::warn!(
                "no database at {}: planning against an empty store",
                path.display()
            );
            let empty = SqliteTradeStore::open_scratch()
                .await
                .map_err(|e| Failure::Runtime(format!("cannot make an empty store: {e}")))?;
            Ok((Arc::new(empty), None))
        }
        Err(e @ StoreAccessError::BadUrl(_)) => Err(Failure::Config(e.to_string())),
        Err(e) => Err(Failure::Refused(e.to_string())),
    }
}

/// Credentials refused or an account that does not exist stay refused (3); a host that did not
/// answer may answer later (1).
fn broker_failure(error: &BrokerError) -> Failure {
    let text = format!("reconciliation failed: cannot connect to the broker: {error}");
    if error.is_transient() {
        Failure::Runtime(text)
    } else {
        Failure::Refused(text)
    }
}
