//! The quote hot path: wire bytes -> frame codec -> envelope -> typed `ProtoOaSpotEvent`.
//! Target: at least 3 million spot-event frames per second on one core.

// Setup works on fixed, valid data: a failure there is a broken benchmark, reported by panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ctrader_proto::openapi::ProtoOaSpotEvent;
use ctrader_proto::{Envelope, EnvelopeCodec, Payload};
use tokio_util::codec::{Decoder, Encoder};

const BATCH: u64 = 1024;

/// A batch of realistic spot events as the server sends them: both sides most of the time, one
/// side now and then, with timestamps.
fn wire_batch() -> BytesMut {
    let mut wire = BytesMut::new();
    let mut codec = EnvelopeCodec::new();
    for i in 0..BATCH {
        let bid = 412_300_000 + (i % 97) * 100_000;
        let event = ProtoOaSpotEvent {
            ctid_trader_account_id: 44_556_677,
            symbol_id: 310,
            bid: (i % 7 != 0).then_some(bid),
            ask: Some(bid + 200_000),
            timestamp: Some(1_763_950_000_123 + i64::try_from(i).unwrap() * 250),
            ..ProtoOaSpotEvent::default()
        };
        codec.encode(Envelope::new(event), &mut wire).unwrap();
    }
    wire
}

fn decode_spot_events(c: &mut Criterion) {
    let wire = wire_batch();
    let mut group = c.benchmark_group("spot_event");
    group.throughput(Throughput::Elements(BATCH));
    group.bench_function("decode_batch_of_1024_frames", |b| {
        b.iter(|| {
            // One socket read's worth of frames, as the client's read loop sees it.
            let mut buf = wire.clone();
            let mut codec = EnvelopeCodec::new();
            let mut last_ask = 0;
            let mut count = 0_u64;
            while let Some(envelope) = codec.decode(&mut buf).unwrap() {
                if let Payload::SpotEvent(event) = envelope.payload {
                    last_ask = event.ask.unwrap_or(last_ask);
                    count += 1;
                }
            }
            assert_eq!(count, BATCH);
            black_box(last_ask)
        });
    });
    group.finish();
}

criterion_group!(benches, decode_spot_events);
criterion_main!(benches);
