//! Property tests of the codec: round trips, streams cut anywhere, and hostile input.

// Test helpers: a panic with a message is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::{BufMut, Bytes, BytesMut};
use ctrader_proto::openapi::{
    ProtoHeartbeatEvent, ProtoOaErrorRes, ProtoOaExecutionEvent, ProtoOaNewOrderReq,
    ProtoOaOrderErrorEvent, ProtoOaPosition, ProtoOaSpotEvent, ProtoOaTradeData, ProtoOaTrendbar,
};
use ctrader_proto::{
    Envelope, EnvelopeCodec, FrameCodec, LENGTH_PREFIX_LEN, MODELLED_PAYLOAD_TYPES, Payload,
    ProtoError,
};
use proptest::prelude::*;
use tokio_util::codec::{Decoder, Encoder};

fn price() -> impl Strategy<Value = f64> {
    // Finite prices only: NaN != NaN would make equality meaningless, and the server sends none.
    -1.0e9..1.0e9_f64
}

fn spot_event() -> impl Strategy<Value = Payload> {
    (
        any::<i64>(),
        any::<i64>(),
        proptest::option::of(any::<u64>()),
        proptest::option::of(any::<u64>()),
        proptest::option::of(any::<i64>()),
        proptest::collection::vec(
            (any::<i64>(), any::<i64>(), any::<u64>(), any::<u32>()),
            0..3,
        ),
    )
        .prop_map(|(account, symbol, bid, ask, timestamp, bars)| {
            ProtoOaSpotEvent {
                payload_type: None,
                ctid_trader_account_id: account,
                symbol_id: symbol,
                bid,
                ask,
                trendbar: bars
                    .into_iter()
                    .map(|(volume, low, delta, minutes)| ProtoOaTrendbar {
                        volume,
                        period: Some(1),
                        low: Some(low),
                        delta_open: Some(delta),
                        delta_close: None,
                        delta_high: Some(delta),
                        utc_timestamp_in_minutes: Some(minutes),
                    })
                    .collect(),
                session_close: None,
                timestamp,
            }
            .into()
        })
}

fn new_order() -> impl Strategy<Value = Payload> {
    (
        any::<i64>(),
        1..=3_i32,
        1..=2_i32,
        any::<i64>(),
        proptest::option::of(price()),
        proptest::option::of("[a-z0-9-]{0,50}"),
        proptest::option::of(any::<i64>()),
    )
        .prop_map(
            |(symbol, order_type, side, volume, limit, client_order_id, sl)| {
                ProtoOaNewOrderReq {
                    ctid_trader_account_id: 44_556_677,
                    symbol_id: symbol,
                    order_type,
                    trade_side: side,
                    volume,
                    limit_price: limit,
                    client_order_id,
                    relative_stop_loss: sl,
                    label: Some("pob".into()),
                    ..ProtoOaNewOrderReq::default()
                }
                .into()
            },
        )
}

fn execution_event() -> impl Strategy<Value = Payload> {
    (
        any::<i64>(),
        2..=12_i32,
        any::<i64>(),
        any::<i64>(),
        price(),
        proptest::option::of(0..=8_u32),
    )
        .prop_map(
            |(position_id, execution_type, volume, swap, price, money_digits)| {
                ProtoOaExecutionEvent {
                    ctid_trader_account_id: 1,
                    execution_type,
                    position: Some(ProtoOaPosition {
                        position_id,
                        trade_data: ProtoOaTradeData {
                            symbol_id: 310,
                            volume,
                            trade_side: 2,
                            ..ProtoOaTradeData::default()
                        },
                        position_status: 1,
                        swap,
                        price: Some(price),
                        money_digits,
                        ..ProtoOaPosition::default()
                    }),
                    ..ProtoOaExecutionEvent::default()
                }
                .into()
            },
        )
}

fn errors() -> impl Strategy<Value = Payload> {
    prop_oneof![
        (
            "[A-Z_]{1,40}",
            proptest::option::of(".{0,60}"),
            proptest::option::of(any::<u64>())
        )
            .prop_map(|(error_code, description, retry_after)| {
                ProtoOaErrorRes {
                    error_code,
                    description,
                    retry_after,
                    ..ProtoOaErrorRes::default()
                }
                .into()
            }),
        ("[A-Z_]{1,40}", proptest::option::of(any::<i64>())).prop_map(|(error_code, order_id)| {
            ProtoOaOrderErrorEvent {
                ctid_trader_account_id: 9,
                error_code,
                order_id,
                ..ProtoOaOrderErrorEvent::default()
            }
            .into()
        }),
    ]
}

fn unknown() -> impl Strategy<Value = Payload> {
    (
        any::<u32>().prop_filter("not a modelled type", |t| {
            !MODELLED_PAYLOAD_TYPES.contains(t)
        }),
        proptest::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(payload_type, bytes)| Payload::Unknown {
            payload_type,
            bytes: bytes.into(),
        })
}

fn envelope() -> impl Strategy<Value = Envelope> {
    (
        prop_oneof![
            Just(Payload::from(ProtoHeartbeatEvent::default())),
            spot_event(),
            new_order(),
            execution_event(),
            errors(),
            unknown(),
        ],
        proptest::option::of("[ -~]{0,24}"),
    )
        .prop_map(|(payload, client_msg_id)| Envelope {
            client_msg_id,
            payload,
        })
}

fn encode_all(envelopes: &[Envelope]) -> BytesMut {
    let mut wire = BytesMut::new();
    let mut codec = EnvelopeCodec::new();
    for envelope in envelopes {
        codec.encode(envelope, &mut wire).unwrap();
    }
    wire
}

/// Feeds `wire` to a fresh decoder in the given pieces, like reads from a socket.
fn decode_in_pieces(wire: &[u8], cuts: &[usize]) -> Vec<Envelope> {
    let mut codec = EnvelopeCodec::new();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut start = 0;
    for &end in cuts.iter().chain(std::iter::once(&wire.len())) {
        buf.extend_from_slice(&wire[start..end]);
        start = end;
        // Bounded: each successful decode consumes a whole frame from a finite buffer.
        while let Some(envelope) = codec.decode(&mut buf).unwrap() {
            out.push(envelope);
        }
    }
    assert!(buf.is_empty(), "no bytes left over");
    out
}

/// Bytes a broken or hostile peer might send: pure noise, or frames whose prefixes are right
/// (so the decoder gets past framing) but whose bodies are noise, or a mix of both.
fn hostile_input() -> impl Strategy<Value = Vec<u8>> {
    let segment = (
        any::<bool>(),
        any::<u32>(),
        proptest::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(honest_prefix, random_prefix, body)| {
            let prefix = if honest_prefix {
                u32::try_from(body.len()).unwrap()
            } else {
                random_prefix
            };
            let mut bytes = prefix.to_be_bytes().to_vec();
            bytes.extend_from_slice(&body);
            bytes
        });
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..2048),
        proptest::collection::vec(segment, 0..8).prop_map(|segments| segments.concat()),
    ]
}

proptest! {
    #[test]
    fn encode_then_decode_gives_back_the_envelope(original in envelope()) {
        let mut wire = BytesMut::new();
        EnvelopeCodec::new().encode(&original, &mut wire).unwrap();
        let announced = u32::from_be_bytes([wire[0], wire[1], wire[2], wire[3]]);
        prop_assert_eq!(usize::try_from(announced).unwrap(), wire.len() - LENGTH_PREFIX_LEN);
        let decoded = EnvelopeCodec::new().decode(&mut wire).unwrap();
        prop_assert_eq!(decoded, Some(original));
        prop_assert!(wire.is_empty());
    }

    #[test]
    fn a_stream_cut_at_every_byte_yields_the_same_messages(
        envelopes in proptest::collection::vec(envelope(), 1..5),
    ) {
        let wire = encode_all(&envelopes);
        for cut in 0..=wire.len() {
            prop_assert_eq!(&decode_in_pieces(&wire, &[cut]), &envelopes, "cut at {}", cut);
        }
    }

    #[test]
    fn a_stream_in_random_pieces_yields_the_same_messages(
        envelopes in proptest::collection::vec(envelope(), 1..8),
        raw_cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let wire = encode_all(&envelopes);
        let mut cuts: Vec<usize> = raw_cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        cuts.sort_unstable();
        prop_assert_eq!(decode_in_pieces(&wire, &cuts), envelopes);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_reservations_stay_under_the_cap(
        input in hostile_input(),
        raw_cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        max_frame_len in 0_usize..4096,
    ) {
        let mut codec = EnvelopeCodec::with_max_frame_len(max_frame_len);
        let mut cuts: Vec<usize> = raw_cuts.iter().map(|i| i.index(input.len() + 1)).collect();
        cuts.sort_unstable();
        let mut buf = BytesMut::new();
        let mut start = 0;
        'feed: for &end in cuts.iter().chain(std::iter::once(&input.len())) {
            buf.extend_from_slice(&input[start..end]);
            start = end;
            loop {
                let before = buf.capacity();
                let result = codec.decode(&mut buf);
                // Any growth is for one frame under the cap (BytesMut may round up to twice its
                // old size), never for what a hostile prefix announces.
                let bound = 2 * before.max(LENGTH_PREFIX_LEN + max_frame_len);
                prop_assert!(buf.capacity() <= bound, "capacity {} > {}", buf.capacity(), bound);
                match result {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(ProtoError::FrameTooLarge { len, max }) => {
                        prop_assert!(len > max);
                        prop_assert_eq!(max, max_frame_len);
                        break 'feed;
                    }
                    Err(ProtoError::MalformedEnvelope(_) | ProtoError::MalformedBody { .. }) => {
                        break 'feed;
                    }
                    Err(other) => prop_assert!(false, "unexpected error {:?}", other),
                }
            }
        }
    }

    #[test]
    fn an_announced_length_over_the_cap_is_refused_whatever_follows(
        announced in 4097_u32..,
        tail in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut buf = BytesMut::new();
        buf.put_u32(announced);
        buf.put_slice(&tail);
        let capacity = buf.capacity();
        let err = FrameCodec::with_max_frame_len(4096).decode(&mut buf).unwrap_err();
        let is_too_large = matches!(err, ProtoError::FrameTooLarge { max: 4096, .. });
        prop_assert!(is_too_large);
        prop_assert_eq!(buf.capacity(), capacity);
    }

    #[test]
    fn arbitrary_bodies_of_every_modelled_type_never_panic(
        index in any::<prop::sample::Index>(),
        body in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let payload_type = MODELLED_PAYLOAD_TYPES[index.index(MODELLED_PAYLOAD_TYPES.len())];
        match Payload::decode(payload_type, Bytes::from(body)) {
            Ok(payload) => prop_assert_eq!(payload.payload_type(), payload_type),
            Err(ProtoError::MalformedBody { payload_type: reported, .. }) => {
                prop_assert_eq!(reported, payload_type);
            }
            Err(other) => prop_assert!(false, "unexpected error {:?}", other),
        }
    }
}
