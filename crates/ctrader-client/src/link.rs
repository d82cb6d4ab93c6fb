//! One live connection: a reader task that owns the read half, a writer task that owns the write
//! half, an outbound queue between callers and the writer, and replies matched to requests by
//! `clientMsgId`. The writer sends a heartbeat after an idle interval; the reader declares the link
//! dead when the server is silent past the limit. When either side fails, the link is down for good:
//! every waiting request learns it, and the owner builds a new link.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::BytesMut;
use ctrader_proto::openapi::{ProtoHeartbeatEvent, ProtoOaExecutionType};
use ctrader_proto::{Envelope, FrameCodec, Payload, ProtoError, ProtoMessage};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::codec::{Decoder, FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;

use crate::BrokerError;

/// What ends a request's wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReplyKind {
    /// The first frame carrying the request's `clientMsgId`.
    Any,
    /// A trading request: an `ORDER_ACCEPTED` execution event is progress, not the answer; the
    /// answer is the next execution event, an order error or an error response. Events that lost
    /// the `clientMsgId` are matched by the order's `clientOrderId`.
    Execution {
        /// Our client order id, when the request carried one.
        client_order_id: Option<String>,
    },
}

/// Why a request failed, and whether it left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RequestFailure {
    /// It never reached the outbound queue: certainly not sent.
    NotSent(BrokerError),
    /// It was queued (and probably sent), but no answer came.
    Unanswered(BrokerError),
}

impl RequestFailure {
    /// The error, forgetting whether it left (fine for requests that change nothing).
    pub(crate) fn into_error(self) -> BrokerError {
        match self {
            RequestFailure::NotSent(e) | RequestFailure::Unanswered(e) => e,
        }
    }
}

/// Receives every frame the reader does not hand to a waiting request: events, progress of an
/// order (`ORDER_ACCEPTED`), and answers whose request gave up waiting. An answer a request took is
/// not handed over again: each execution reaches its owner exactly once.
pub(crate) trait Inbound: Send + 'static {
    /// Handles one frame; `answered` is true when it also resolved a waiting request.
    fn on_frame(&mut self, envelope: Envelope, answered: bool);
}

struct Waiting {
    kind: ReplyKind,
    /// The request's name, for errors.
    name: &'static str,
    reply: oneshot::Sender<Envelope>,
    /// The broker's order id, once an `ORDER_ACCEPTED` for this request named it: how a later
    /// order error or execution without `clientMsgId` finds its request.
    order_id: Option<i64>,
}

#[derive(Default)]
struct Shared {
    waiting: HashMap<String, Waiting>,
    down_reason: Option<String>,
    /// Set when a frame over the size cap ended the link: the requests that were waiting.
    oversized: Option<Vec<&'static str>>,
}

/// Timing of one link.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LinkTiming {
    /// Heartbeat after this long without sending.
    pub(crate) heartbeat_interval: Duration,
    /// Dead after this long without receiving.
    pub(crate) silence_limit: Duration,
}

/// A handle on one connection; cheap to share.
pub(crate) struct Link {
    outbound: mpsc::UnboundedSender<ProtoMessage>,
    shared: Arc<Mutex<Shared>>,
    down: CancellationToken,
    next_id: AtomicU64,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("down", &self.down.is_cancelled())
            .finish_non_exhaustive()
    }
}

impl Link {
    /// Starts the reader and writer tasks over `stream`.
    pub(crate) fn start<S, I>(stream: S, timing: LinkTiming, inbound: I) -> Arc<Link>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
        I: Inbound,
    {
        let (read, write) = tokio::io::split(stream);
        let (tx, rx) = mpsc::unbounded_channel();
        let link = Arc::new(Link {
            outbound: tx,
            shared: Arc::new(Mutex::new(Shared::default())),
            down: CancellationToken::new(),
            next_id: AtomicU64::new(1),
        });
        tokio::spawn(read_loop(
            FramedRead::new(read, TolerantCodec(FrameCodec::new())),
            Arc::clone(&link),
            timing.silence_limit,
            inbound,
        ));
        tokio::spawn(write_loop(
            FramedWrite::new(write, FrameCodec::new()),
            Arc::clone(&link),
            rx,
            timing.heartbeat_interval,
        ));
        link
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // Nothing panics while holding this lock; recover the data if something ever did.
        self.shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// True once the link has failed or was closed.
    pub(crate) fn is_down(&self) -> bool {
        self.down.is_cancelled()
    }

    /// Waits until the link is down, and says why.
    pub(crate) async fn closed(&self) -> String {
        self.down.cancelled().await;
        self.down_reason()
    }

    fn down_reason(&self) -> String {
        self.lock()
            .down_reason
            .clone()
            .unwrap_or_else(|| "link closed".to_owned())
    }

    /// When a frame over the size cap ended the link: the names of the requests waiting then.
    pub(crate) fn lost_to_oversized_frame(&self) -> Option<Vec<&'static str>> {
        self.lock().oversized.clone()
    }

    /// Takes the link down (idempotent): the first reason sticks, every waiting request fails.
    pub(crate) fn close(&self, reason: impl Into<String>) {
        let waiting = {
            let mut shared = self.lock();
            if shared.down_reason.is_none() {
                shared.down_reason = Some(reason.into());
            }
            std::mem::take(&mut shared.waiting)
        };
        self.down.cancel();
        // Dropping the senders wakes every waiter with "no answer".
        drop(waiting);
    }

    /// Sends a frame that expects no answer; fails if the link is down.
    #[cfg(test)]
    pub(crate) fn send(&self, payload: Payload) -> Result<(), BrokerError> {
        if self.is_down() {
            return Err(BrokerError::Disconnected(self.down_reason()));
        }
        self.outbound
            .send(Envelope::new(payload).to_proto())
            .map_err(|_| BrokerError::Disconnected(self.down_reason()))
    }

    /// Sends a request and waits for its answer (which may be an error frame: the caller reads it).
    pub(crate) async fn request(
        &self,
        payload: Payload,
        kind: ReplyKind,
        name: &'static str,
        timeout: Duration,
    ) -> Result<Envelope, RequestFailure> {
        let id = format!("c{}", self.next_id.fetch_add(1, Ordering::Relaxed));
        let (reply, answer) = oneshot::channel();
        self.lock().waiting.insert(
            id.clone(),
            Waiting {
                kind,
                name,
                reply,
                order_id: None,
            },
        );
        // Checked after registering: a close from now on drops our sender and wakes us.
        if self.is_down() {
            self.lock().waiting.remove(&id);
            return Err(RequestFailure::NotSent(BrokerError::Disconnected(
                self.down_reason(),
            )));
        }
        let frame = Envelope {
            client_msg_id: Some(id.clone()),
            payload,
        }
        .to_proto();
        if self.outbound.send(frame).is_err() {
            self.lock().waiting.remove(&id);
            return Err(RequestFailure::NotSent(BrokerError::Disconnected(
                self.down_reason(),
            )));
        }
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(envelope)) => Ok(envelope),
            Ok(Err(_)) => Err(RequestFailure::Unanswered(BrokerError::Disconnected(
                self.down_reason(),
            ))),
            Err(_) => {
                self.lock().waiting.remove(&id);
                Err(RequestFailure::Unanswered(BrokerError::Timeout {
                    request: name,
                    after: timeout,
                }))
            }
        }
    }

    /// Hands `envelope` to the request it answers, which then owns it; gives it back when it
    /// answers none, is only progress (`ORDER_ACCEPTED`), or its request gave up waiting. The flag
    /// is true when a request took it.
    fn resolve(&self, envelope: Envelope) -> (Option<Envelope>, bool) {
        let mut shared = self.lock();
        let key = envelope
            .client_msg_id
            .as_ref()
            .filter(|id| shared.waiting.contains_key(*id))
            .cloned()
            .or_else(|| by_client_order_id(&shared.waiting, &envelope))
            .or_else(|| by_order_id(&shared.waiting, &envelope));
        let Some(key) = key else {
            return (Some(envelope), false);
        };
        let completes = match shared.waiting.get_mut(&key) {
            Some(w) if matches!(w.kind, ReplyKind::Execution { .. }) => {
                if is_accepted(&envelope) {
                    // Progress: remember the order id the broker gave, for errors that name only it.
                    if let Payload::ExecutionEvent(e) = &envelope.payload {
                        w.order_id = e.order.as_ref().map(|o| o.order_id).or(w.order_id);
                    }
                    false
                } else {
                    true
                }
            }
            Some(_) => true,
            None => false,
        };
        if !completes {
            return (Some(envelope), false);
        }
        let Some(waiting) = shared.waiting.remove(&key) else {
            return (Some(envelope), false);
        };
        drop(shared);
        // A waiter that gave up (timeout) no longer reads it: the owner's stream gets it instead.
        match waiting.reply.send(envelope) {
            Ok(()) => (None, true),
            Err(envelope) => (Some(envelope), false),
        }
    }
}

/// An execution event that lost its `clientMsgId` still answers the order with its `clientOrderId`.
fn by_client_order_id(waiting: &HashMap<String, Waiting>, envelope: &Envelope) -> Option<String> {
    let Payload::ExecutionEvent(event) = &envelope.payload else {
        return None;
    };
    let coid = event.order.as_ref()?.client_order_id.as_deref()?;
    waiting
        .iter()
        .find(|(_, w)| {
            matches!(&w.kind, ReplyKind::Execution { client_order_id: Some(c) } if c == coid)
        })
        .map(|(id, _)| id.clone())
}

/// An order error (or execution) without `clientMsgId` answers the order the broker accepted
/// under that order id.
fn by_order_id(waiting: &HashMap<String, Waiting>, envelope: &Envelope) -> Option<String> {
    let order_id = match &envelope.payload {
        Payload::OrderErrorEvent(e) => e.order_id?,
        Payload::ExecutionEvent(e) => e.order.as_ref()?.order_id,
        _ => return None,
    };
    waiting
        .iter()
        .find(|(_, w)| {
            matches!(w.kind, ReplyKind::Execution { .. }) && w.order_id == Some(order_id)
        })
        .map(|(id, _)| id.clone())
}

fn is_accepted(envelope: &Envelope) -> bool {
    matches!(&envelope.payload, Payload::ExecutionEvent(e)
        if e.execution_type == ProtoOaExecutionType::OrderAccepted as i32)
}

/// Framing that survives one undecodable envelope: the frame's bytes are already consumed, so
/// the error is handed up as an item instead of ending the stream (a stream ends after any
/// decoder error). Oversized frames and I/O errors still end it.
struct TolerantCodec(FrameCodec);

impl Decoder for TolerantCodec {
    type Item = Result<ProtoMessage, ProtoError>;
    type Error = ProtoError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, ProtoError> {
        match self.0.decode(src) {
            Ok(message) => Ok(message.map(Ok)),
            Err(e @ ProtoError::MalformedEnvelope(_)) => Ok(Some(Err(e))),
            Err(e) => Err(e),
        }
    }
}

async fn read_loop<R, I>(
    mut frames: FramedRead<R, TolerantCodec>,
    link: Arc<Link>,
    silence_limit: Duration,
    mut inbound: I,
) where
    R: AsyncRead + Send + Unpin,
    I: Inbound,
{
    let reason = loop {
        let next = tokio::select! {
            () = link.down.cancelled() => return,
            next = tokio::time::timeout(silence_limit, frames.next()) => next,
        };
        let message = match next {
            Err(_) => break format!("server silent for {silence_limit:?}: dead link"),
            Ok(None) => break "server closed the connection".to_owned(),
            Ok(Some(Err(e))) => {
                if matches!(e, ProtoError::FrameTooLarge { .. }) {
                    let mut shared = link.lock();
                    let mut waiting: Vec<&'static str> =
                        shared.waiting.values().map(|w| w.name).collect();
                    waiting.sort_unstable();
                    shared.oversized = Some(waiting);
                }
                break format!("read failed: {e}");
            }
            Ok(Some(Ok(message))) => message,
        };
        let envelope = match message.and_then(Envelope::from_proto) {
            Ok(envelope) => envelope,
            Err(e) => {
                // One bad body does not kill the link; its request, if any, times out.
                tracing::warn!(error = %e, "skipping an undecodable frame from the broker");
                continue;
            }
        };
        if matches!(envelope.payload, Payload::HeartbeatEvent(_)) {
            continue;
        }
        if let (Some(envelope), answered) = link.resolve(envelope) {
            inbound.on_frame(envelope, answered);
        }
    };
    tracing::warn!(%reason, "cTrader link down");
    link.close(reason);
}

async fn write_loop<W>(
    mut sink: FramedWrite<W, FrameCodec>,
    link: Arc<Link>,
    mut outbound: mpsc::UnboundedReceiver<ProtoMessage>,
    heartbeat_interval: Duration,
) where
    W: AsyncWrite + Send + Unpin,
{
    let heartbeat = Envelope::new(ProtoHeartbeatEvent::default()).to_proto();
    let mut last_sent = Instant::now();
    let reason = loop {
        let frame = tokio::select! {
            biased;
            () = link.down.cancelled() => return,
            frame = outbound.recv() => match frame {
                Some(frame) => frame,
                None => return,
            },
            () = tokio::time::sleep_until(last_sent + heartbeat_interval) => heartbeat.clone(),
        };
        if let Err(e) = sink.send(frame).await {
            break format!("write failed: {e}");
        }
        last_sent = Instant::now();
    };
    tracing::warn!(%reason, "cTrader link down");
    link.close(reason);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ctrader_proto::openapi::{
        ProtoOaExecutionEvent, ProtoOaOrder, ProtoOaReconcileReq, ProtoOaReconcileRes,
        ProtoOaTradeData,
    };
    use tokio::io::DuplexStream;

    /// Collects what the reader hands over.
    #[derive(Clone, Default)]
    struct Collect(Arc<Mutex<Vec<(Envelope, bool)>>>);

    impl Inbound for Collect {
        fn on_frame(&mut self, envelope: Envelope, answered: bool) {
            self.0.lock().unwrap().push((envelope, answered));
        }
    }

    impl Collect {
        /// What the stream got so far.
        fn seen(&self) -> Vec<(Envelope, bool)> {
            self.0.lock().unwrap().clone()
        }
    }

    /// A reconcile request sent as `kind` on its own task, so the test can play the server.
    fn spawn_request(
        link: &Arc<Link>,
        kind: ReplyKind,
        name: &'static str,
        timeout: Duration,
    ) -> tokio::task::JoinHandle<Result<Envelope, RequestFailure>> {
        let link = Arc::clone(link);
        tokio::spawn(async move { link.request(reconcile_req(), kind, name, timeout).await })
    }

    /// A new order's request waiting for the execution of `client_order_id`, on its own task.
    fn spawn_order(
        link: &Arc<Link>,
        client_order_id: &str,
    ) -> tokio::task::JoinHandle<Result<Envelope, RequestFailure>> {
        let kind = ReplyKind::Execution {
            client_order_id: Some(client_order_id.into()),
        };
        spawn_request(link, kind, "new order", Duration::from_secs(5))
    }

    /// An execution event of `kind` for the order with this client order id.
    fn execution(
        kind: ProtoOaExecutionType,
        order_id: i64,
        client_order_id: &str,
    ) -> ProtoOaExecutionEvent {
        ProtoOaExecutionEvent {
            ctid_trader_account_id: 7,
            execution_type: kind as i32,
            order: Some(ProtoOaOrder {
                order_id,
                client_order_id: Some(client_order_id.into()),
                trade_data: ProtoOaTradeData::default(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// An order error event for `order_id`, without a clientMsgId.
    fn order_error(order_id: i64) -> Envelope {
        Envelope::new(ctrader_proto::openapi::ProtoOaOrderErrorEvent {
            ctid_trader_account_id: 7,
            error_code: "NOT_ENOUGH_MONEY".into(),
            order_id: Some(order_id),
            ..Default::default()
        })
    }

    const TIMING: LinkTiming = LinkTiming {
        heartbeat_interval: Duration::from_secs(10),
        silence_limit: Duration::from_secs(30),
    };

    /// A link over an in-memory pipe, and the server's end of the pipe as frames.
    fn pair() -> (
        Arc<Link>,
        Collect,
        tokio_util::codec::Framed<DuplexStream, FrameCodec>,
    ) {
        let (client, server) = tokio::io::duplex(1 << 16);
        let collect = Collect::default();
        let link = Link::start(client, TIMING, collect.clone());
        (
            link,
            collect,
            tokio_util::codec::Framed::new(server, FrameCodec::new()),
        )
    }

    fn reconcile_req() -> Payload {
        ProtoOaReconcileReq {
            ctid_trader_account_id: 7,
            ..Default::default()
        }
        .into()
    }

    async fn next_envelope(
        server: &mut tokio_util::codec::Framed<DuplexStream, FrameCodec>,
    ) -> Envelope {
        Envelope::from_proto(server.next().await.unwrap().unwrap()).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn replies_are_matched_by_client_msg_id() {
        let (link, collect, mut server) = pair();
        let waiter = spawn_request(&link, ReplyKind::Any, "reconcile", TIMING.silence_limit);
        let req = next_envelope(&mut server).await;
        let id = req.client_msg_id.clone().unwrap();
        // An unrelated reply first: it goes to the stream, not to the waiter.
        let other = Envelope::new(ProtoOaReconcileRes::default()).with_client_msg_id("zzz");
        server.send(other.to_proto()).await.unwrap();
        let reply = Envelope::new(ProtoOaReconcileRes {
            ctid_trader_account_id: 7,
            ..Default::default()
        })
        .with_client_msg_id(id);
        server.send(reply.to_proto()).await.unwrap();
        let got = waiter.await.unwrap().unwrap();
        assert_eq!(got, reply);
        let seen = collect.seen();
        assert_eq!(seen, vec![(other, false)]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_order_error_without_client_msg_id_finds_its_order_by_order_id() {
        let (link, collect, mut server) = pair();
        let waiter = spawn_order(&link, "pob-2");
        let req = next_envelope(&mut server).await;
        let accepted = Envelope::new(execution(
            ProtoOaExecutionType::OrderAccepted,
            4242,
            "pob-2",
        ))
        .with_client_msg_id(req.client_msg_id.clone().unwrap());
        server.send(accepted.to_proto()).await.unwrap();
        // Another order's error first: it is not ours, the stream gets it.
        let other = order_error(99);
        server.send(other.to_proto()).await.unwrap();
        let ours = order_error(4242);
        server.send(ours.to_proto()).await.unwrap();
        assert_eq!(waiter.await.unwrap().unwrap(), ours);
        let seen = collect.seen();
        assert_eq!(seen, vec![(accepted, false), (other, false)]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_order_waits_past_accepted_and_its_answer_is_delivered_once() {
        let (link, collect, mut server) = pair();
        let waiter = spawn_order(&link, "pob-1");
        let req = next_envelope(&mut server).await;
        let event = |kind| execution(kind, 0, "pob-1");
        let accepted = Envelope::new(event(ProtoOaExecutionType::OrderAccepted))
            .with_client_msg_id(req.client_msg_id.clone().unwrap());
        server.send(accepted.to_proto()).await.unwrap();
        // The fill lost its clientMsgId: the clientOrderId still matches it.
        let filled = Envelope::new(event(ProtoOaExecutionType::OrderFilled));
        server.send(filled.to_proto()).await.unwrap();
        assert_eq!(waiter.await.unwrap().unwrap(), filled);
        // The progress goes to the stream; the answer only to the order that waited for it.
        let seen = collect.seen();
        assert_eq!(seen, vec![(accepted, false)]);
    }

    #[tokio::test(start_paused = true)]
    async fn heartbeat_after_ten_idle_seconds() {
        let (_link, _collect, mut server) = pair();
        let started = Instant::now();
        let first = next_envelope(&mut server).await;
        assert!(matches!(first.payload, Payload::HeartbeatEvent(_)));
        assert_eq!(started.elapsed(), Duration::from_secs(10));
        let second = next_envelope(&mut server).await;
        assert!(matches!(second.payload, Payload::HeartbeatEvent(_)));
        assert_eq!(started.elapsed(), Duration::from_secs(20));
    }

    #[tokio::test(start_paused = true)]
    async fn sending_postpones_the_heartbeat() {
        let (link, _collect, mut server) = pair();
        tokio::time::sleep(Duration::from_secs(6)).await;
        let started = Instant::now();
        link.send(reconcile_req()).unwrap();
        assert!(matches!(
            next_envelope(&mut server).await.payload,
            Payload::ReconcileReq(_)
        ));
        assert!(matches!(
            next_envelope(&mut server).await.payload,
            Payload::HeartbeatEvent(_)
        ));
        assert_eq!(started.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_server_is_a_dead_link_and_waiters_learn_it() {
        let (link, _collect, mut server) = pair();
        let waiter = spawn_request(&link, ReplyKind::Any, "reconcile", Duration::from_secs(60));
        let started = Instant::now();
        // Keep reading (the client's heartbeats) but never answer.
        let drain = tokio::spawn(async move { while server.next().await.is_some() {} });
        let reason = link.closed().await;
        assert_eq!(started.elapsed(), Duration::from_secs(30));
        assert!(reason.contains("silent"), "{reason}");
        let err = waiter.await.unwrap().unwrap_err();
        assert!(
            matches!(err, RequestFailure::Unanswered(BrokerError::Disconnected(ref r)) if r.contains("silent")),
            "{err:?}"
        );
        assert!(matches!(
            link.request(reconcile_req(), ReplyKind::Any, "x", Duration::from_secs(1))
                .await,
            Err(RequestFailure::NotSent(_))
        ));
        drain.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn heartbeats_from_the_server_keep_the_link_alive() {
        let (link, collect, mut server) = pair();
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_secs(20)).await;
            server
                .send(Envelope::new(ProtoHeartbeatEvent::default()).to_proto())
                .await
                .unwrap();
        }
        assert!(!link.is_down());
        assert!(
            collect.0.lock().unwrap().is_empty(),
            "heartbeats are not events"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_undecodable_frame_is_skipped_and_an_oversized_one_kills_the_link() {
        use tokio::io::AsyncWriteExt;
        let (link, collect, mut server) = pair();
        // A 3-byte body that is not a ProtoMessage (field 1 with a truncated varint).
        server
            .get_mut()
            .write_all(&[0, 0, 0, 3, 0x08, 0xff, 0xff])
            .await
            .unwrap();
        let ok = Envelope::new(ProtoOaReconcileRes::default()).with_client_msg_id("late");
        server.send(ok.to_proto()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!link.is_down());
        assert_eq!(collect.seen(), vec![(ok, false)]);
        // A length prefix past the cap ends the link before anything is allocated.
        server
            .get_mut()
            .write_all(&u32::MAX.to_be_bytes())
            .await
            .unwrap();
        let reason = link.closed().await;
        assert!(reason.contains("read failed"), "{reason}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_unanswered_request_times_out() {
        let (link, _collect, _server) = pair();
        let err = link
            .request(
                reconcile_req(),
                ReplyKind::Any,
                "reconcile",
                Duration::from_secs(2),
            )
            .await
            .unwrap_err();
        assert_eq!(
            err,
            RequestFailure::Unanswered(BrokerError::Timeout {
                request: "reconcile",
                after: Duration::from_secs(2)
            })
        );
    }
}
