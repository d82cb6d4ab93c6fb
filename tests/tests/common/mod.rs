//! What the cross-crate tests share: a bounded wait, and the real client connected over TLS to
//! a simulator on loopback with its credentials and CA.

// Test helpers panic on purpose: a failed set-up is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, unreachable_pub)]

use std::future::Future;
use std::time::Duration;

use ctrader_client::{CTraderClient, CTraderConfig, Credentials, ExtraCa, Timing};
use ctrader_sim::{SimCredentials, SimHandle};

/// The longest any single step may take before the test fails instead of hanging.
pub const LIMIT: Duration = Duration::from_secs(10);

/// `fut`'s result, or a failed test naming `what` after [`LIMIT`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(LIMIT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: no result within {LIMIT:?}"),
    }
}

/// The real client's configuration for `sim`'s default account, trusting its CA, with short timeouts.
pub fn config(sim: &SimHandle) -> CTraderConfig {
    let creds = SimCredentials::default();
    let mut config = CTraderConfig::new(
        "localhost",
        sim.local_addr().port(),
        Credentials {
            client_id: creds.client_id,
            client_secret: creds.client_secret,
            access_token: creds.access_token,
            refresh_token: None,
        },
        creds.account_id,
    );
    config.extra_ca = Some(ExtraCa::PemFile(sim.ca_cert_path().unwrap().to_path_buf()));
    config.timing = Timing {
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(5),
        order_timeout: Duration::from_secs(5),
        ..Timing::default()
    };
    config
}

/// The real client, authorised on `sim`'s default account, trusting its CA, with short timeouts.
pub async fn connect(sim: &SimHandle) -> CTraderClient {
    within("connect", CTraderClient::connect(config(sim)))
        .await
        .unwrap()
}
