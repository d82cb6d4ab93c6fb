//! A tiny cTrader client for the simulator's tests: TLS trusting the simulator's CA, the wire
//! crate's frame codec, and helpers that hold a conversation the way a client would. Every wait
//! is bounded so a broken server fails a test instead of hanging it.

// A test helper: panicking on a broken conversation is how it fails a test.
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ctrader_proto::openapi::{
    ProtoOaAccountAuthReq, ProtoOaApplicationAuthReq, ProtoOaErrorRes, ProtoOaExecutionEvent,
    ProtoOaNewOrderReq,
};
use ctrader_proto::{FrameCodec, OpenApiMessage, Payload, ProtoError, ProtoMessage};
use ctrader_sim::{MarketHours, SimConfig, SimHandle, Simulator};
use domain::Timestamp;
use futures_util::{SinkExt, StreamExt};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_util::codec::Framed;

/// Longest wait for any single frame.
pub const WAIT: Duration = Duration::from_secs(5);
/// Monday 2025-11-24 03:00 UTC: inside the palm oil morning session.
pub const MONDAY_0300: Timestamp = Timestamp(1_763_953_200_000);
/// Saturday 2025-11-29 12:00 UTC: every simulated market is closed.
pub const SATURDAY_NOON: Timestamp = Timestamp(1_764_417_600_000);
pub const PALM: i64 = ctrader_sim::PALM_OIL_SYMBOL_ID;

/// A simulator configuration for tests: a free port, its own certificate directory, every
/// market open, a fixed start, six hours of history, ten simulated seconds per real second.
pub fn test_config(cert_dir: &Path) -> SimConfig {
    SimConfig {
        certificates: ctrader_sim::CertificateSource::Directory(cert_dir.to_path_buf()),
        market_hours: MarketHours::AlwaysOpen,
        start_time: Some(MONDAY_0300),
        history: Duration::from_secs(6 * 3600),
        speed: 10.0,
        tick_interval: Duration::from_millis(20),
        seed: 7,
        ..SimConfig::default()
    }
}

/// A running simulator and the directory holding its certificates.
pub struct TestSim {
    pub handle: SimHandle,
    pub config: SimConfig,
    pub _dir: tempfile::TempDir,
}

impl TestSim {
    /// Starts a simulator with the test configuration, adjusted by `adjust`.
    pub async fn start(adjust: impl FnOnce(&mut SimConfig)) -> TestSim {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(&dir.path().join("certs"));
        adjust(&mut config);
        let handle =
            tokio::time::timeout(Duration::from_secs(60), Simulator::start(config.clone()))
                .await
                .expect("simulator start timed out")
                .expect("simulator starts");
        TestSim {
            handle,
            config,
            _dir: dir,
        }
    }

    pub fn account(&self) -> i64 {
        self.config.credentials.account_id
    }

    /// A connected, unauthenticated client.
    pub async fn connect(&self) -> TestClient {
        TestClient::connect(&self.handle).await
    }

    /// A client with the application and the account authorised.
    pub async fn authorised(&self) -> TestClient {
        let mut client = self.connect().await;
        let credentials = &self.config.credentials;
        let reply = client
            .request(ProtoOaApplicationAuthReq {
                client_id: credentials.client_id.clone(),
                client_secret: credentials.client_secret.expose().to_owned(),
                ..Default::default()
            })
            .await;
        assert!(matches!(reply, Payload::ApplicationAuthRes(_)), "{reply:?}");
        let reply = client
            .request(ProtoOaAccountAuthReq {
                ctid_trader_account_id: credentials.account_id,
                access_token: credentials.access_token.expose().to_owned(),
                ..Default::default()
            })
            .await;
        assert!(matches!(reply, Payload::AccountAuthRes(_)), "{reply:?}");
        client
    }
}

/// A raw protocol client.
pub struct TestClient {
    framed: Framed<TlsStream<TcpStream>, FrameCodec>,
    next_id: u64,
}

impl TestClient {
    /// Connects over TLS to the simulator, trusting only its CA, checking the name `localhost`.
    pub async fn connect(handle: &SimHandle) -> TestClient {
        let ca = handle.ca_cert_path().expect("generated CA");
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = TlsConnector::from(Arc::new(config));
        let tcp = tokio::time::timeout(WAIT, TcpStream::connect(handle.local_addr()))
            .await
            .expect("connect timed out")
            .expect("connects");
        let stream = tokio::time::timeout(
            WAIT,
            connector.connect(ServerName::try_from("localhost").unwrap(), tcp),
        )
        .await
        .expect("handshake timed out")
        .expect("TLS handshake with the simulator's certificate");
        TestClient {
            framed: Framed::new(stream, FrameCodec::new()),
            next_id: 0,
        }
    }

    /// Sends a message with a fresh clientMsgId and returns that id.
    pub async fn send<M: OpenApiMessage>(&mut self, message: M) -> String {
        self.next_id += 1;
        let id = format!("t-{}", self.next_id);
        self.send_frame(ProtoMessage::wrap(&message, Some(id.clone())))
            .await;
        id
    }

    /// Sends one envelope as it is.
    pub async fn send_frame(&mut self, frame: ProtoMessage) {
        tokio::time::timeout(WAIT, self.framed.send(frame))
            .await
            .expect("send timed out")
            .expect("send");
    }

    /// Writes raw bytes on the TLS stream.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        let stream = self.framed.get_mut();
        tokio::time::timeout(WAIT, async {
            stream.write_all(bytes).await?;
            stream.flush().await
        })
        .await
        .expect("raw send timed out")
        .expect("raw send");
    }

    /// The next frame, `None` when the server closed the connection; panics after [`WAIT`].
    pub async fn next_frame(&mut self) -> Option<Result<ProtoMessage, ProtoError>> {
        tokio::time::timeout(WAIT, self.framed.next())
            .await
            .expect("no frame from the simulator in time")
    }

    /// The next frame within `wait`, or `Err(())` if none came.
    pub async fn next_frame_within(
        &mut self,
        wait: Duration,
    ) -> Result<Option<Result<ProtoMessage, ProtoError>>, ()> {
        tokio::time::timeout(wait, self.framed.next())
            .await
            .map_err(|_| ())
    }

    /// The next decoded frame and its clientMsgId.
    pub async fn next(&mut self) -> (Option<String>, Payload) {
        let frame = self
            .next_frame()
            .await
            .expect("connection closed")
            .expect("well-formed frame");
        decode(frame)
    }

    /// The first frame answering `id`, skipping spots, heartbeats and other pushes (at most 500).
    pub async fn reply_to(&mut self, id: &str) -> Payload {
        for _ in 0..500 {
            let (msg_id, payload) = self.next().await;
            if msg_id.as_deref() == Some(id) {
                return payload;
            }
        }
        panic!("no reply to {id} within 500 frames");
    }

    /// Sends and returns the first reply.
    pub async fn request<M: OpenApiMessage>(&mut self, message: M) -> Payload {
        let id = self.send(message).await;
        self.reply_to(&id).await
    }

    /// The first frame matching `accept` (at most 2000 frames, each within [`WAIT`]).
    pub async fn wait_for(
        &mut self,
        mut accept: impl FnMut(&Option<String>, &Payload) -> bool,
    ) -> (Option<String>, Payload) {
        for _ in 0..2000 {
            let (id, payload) = self.next().await;
            if accept(&id, &payload) {
                return (id, payload);
            }
        }
        panic!("expected frame did not arrive within 2000 frames");
    }

    /// Every frame that answers `id`, until `done` says the conversation is over (at most 500).
    pub async fn replies_until(
        &mut self,
        id: &str,
        mut done: impl FnMut(&Payload) -> bool,
    ) -> Vec<Payload> {
        let mut replies = Vec::new();
        for _ in 0..500 {
            let (msg_id, payload) = self.next().await;
            if msg_id.as_deref() == Some(id) {
                let finished = done(&payload);
                replies.push(payload);
                if finished {
                    return replies;
                }
            }
        }
        panic!("conversation {id} did not finish within 500 frames");
    }

    /// True when the server closes the connection (or it errors) within `wait`, skipping frames.
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.framed.next()).await {
                Err(_) => return false,
                Ok(None) | Ok(Some(Err(_))) => return true,
                Ok(Some(Ok(_))) => {}
            }
        }
    }
}

/// Decodes an envelope's body.
pub fn decode(frame: ProtoMessage) -> (Option<String>, Payload) {
    let id = frame.client_msg_id.clone();
    let payload = Payload::decode(frame.payload_type, frame.payload.unwrap_or_default())
        .expect("decodable body");
    (id, payload)
}

/// The error code of an error reply, panicking on anything else.
pub fn error_code(payload: &Payload) -> String {
    match payload {
        Payload::ErrorRes(ProtoOaErrorRes { error_code, .. }) => error_code.clone(),
        Payload::OrderErrorEvent(e) => e.error_code.clone(),
        other => panic!("expected an error, got {other:?}"),
    }
}

/// A 1 t palm oil market buy with SL/TP distances in 1/100000.
pub fn market_buy(
    account: i64,
    volume: i64,
    sl: Option<i64>,
    tp: Option<i64>,
) -> ProtoOaNewOrderReq {
    ProtoOaNewOrderReq {
        ctid_trader_account_id: account,
        symbol_id: PALM,
        order_type: 1,
        trade_side: 1,
        volume,
        relative_stop_loss: sl,
        relative_take_profit: tp,
        label: Some("pob".to_owned()),
        client_order_id: Some("pob-test-1".to_owned()),
        ..Default::default()
    }
}

/// Places an order and returns the ACCEPTED and FILLED execution events answering it.
pub async fn place(
    client: &mut TestClient,
    order: ProtoOaNewOrderReq,
) -> Vec<ProtoOaExecutionEvent> {
    let id = client.send(order).await;
    let replies = client
        .replies_until(&id, |p| match p {
            Payload::ExecutionEvent(e) => e.execution_type == 3,
            _ => true,
        })
        .await;
    replies
        .into_iter()
        .map(|p| match p {
            Payload::ExecutionEvent(e) => e,
            other => panic!("order refused: {other:?}"),
        })
        .collect()
}
