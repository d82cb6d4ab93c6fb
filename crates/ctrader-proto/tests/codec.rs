//! Failure paths and edge cases of the frame codec, one behaviour per test.

// Test helpers: a panic with a message is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::{BufMut, Bytes, BytesMut};
use ctrader_proto::openapi::{ProtoHeartbeatEvent, ProtoOaSpotEvent};
use ctrader_proto::{
    DEFAULT_MAX_FRAME_LEN, Envelope, EnvelopeCodec, FrameCodec, Payload, ProtoError, ProtoMessage,
};
use prost::Message as _;
use tokio_util::codec::{Decoder, Encoder};

fn frame(body: &[u8]) -> BytesMut {
    let mut buf = BytesMut::new();
    buf.put_u32(u32::try_from(body.len()).unwrap());
    buf.put_slice(body);
    buf
}

fn spot(bid: Option<u64>, ask: Option<u64>) -> ProtoOaSpotEvent {
    ProtoOaSpotEvent {
        ctid_trader_account_id: 44_556_677,
        symbol_id: 310,
        bid,
        ask,
        ..ProtoOaSpotEvent::default()
    }
}

#[test]
fn an_oversized_prefix_is_rejected_before_any_reservation() {
    let mut buf = BytesMut::with_capacity(16);
    buf.put_u32(u32::MAX);
    buf.put_slice(b"junk");
    let capacity = buf.capacity();
    let err = FrameCodec::new().decode(&mut buf).unwrap_err();
    match err {
        ProtoError::FrameTooLarge { len, max } => {
            assert_eq!(len, usize::try_from(u32::MAX).unwrap());
            assert_eq!(max, DEFAULT_MAX_FRAME_LEN);
        }
        other => panic!("expected FrameTooLarge, got {other:?}"),
    }
    assert_eq!(
        buf.capacity(),
        capacity,
        "nothing was reserved for the announced frame"
    );
    assert!(!err_is_transient(FrameCodec::new(), u32::MAX));
}

fn err_is_transient(mut codec: FrameCodec, prefix: u32) -> bool {
    let mut buf = BytesMut::new();
    buf.put_u32(prefix);
    codec.decode(&mut buf).unwrap_err().is_transient()
}

#[test]
fn the_cap_is_configurable_and_inclusive() {
    let body = Envelope::new(spot(Some(1), Some(2)))
        .to_proto()
        .encode_to_vec();
    let mut codec = FrameCodec::with_max_frame_len(body.len());
    assert_eq!(codec.max_frame_len(), body.len());
    assert!(
        codec.decode(&mut frame(&body)).unwrap().is_some(),
        "a body of exactly the cap passes"
    );

    let mut smaller = FrameCodec::with_max_frame_len(body.len() - 1);
    let err = smaller.decode(&mut frame(&body)).unwrap_err();
    assert!(
        matches!(err, ProtoError::FrameTooLarge { len, max } if len == body.len() && max == body.len() - 1),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "frame of {} bytes exceeds the limit of {} bytes",
            body.len(),
            body.len() - 1
        )
    );
}

#[test]
fn an_oversized_outgoing_message_is_refused_and_nothing_is_written() {
    let envelope = Envelope::new(spot(Some(412_300_000), Some(412_500_000)));
    let mut dst = BytesMut::new();
    let err = EnvelopeCodec::with_max_frame_len(8)
        .encode(&envelope, &mut dst)
        .unwrap_err();
    assert!(
        matches!(err, ProtoError::FrameTooLarge { max: 8, .. }),
        "{err:?}"
    );
    assert!(dst.is_empty());
}

#[test]
fn an_incomplete_frame_waits_without_consuming() {
    let full = frame(
        &Envelope::new(spot(Some(1), None))
            .to_proto()
            .encode_to_vec(),
    );
    for cut in 0..full.len() {
        let mut partial = BytesMut::from(&full[..cut]);
        assert_eq!(
            FrameCodec::new().decode(&mut partial).unwrap(),
            None,
            "cut at {cut}"
        );
        assert_eq!(&partial[..], &full[..cut], "nothing consumed at cut {cut}");
    }
}

#[test]
fn a_body_that_is_not_an_envelope_is_a_malformed_envelope() {
    // Field 1 announced as a length-delimited field running past the end of the body.
    let mut buf = frame(&[0x0a, 0x7f, 0x01]);
    let err = FrameCodec::new().decode(&mut buf).unwrap_err();
    assert!(matches!(err, ProtoError::MalformedEnvelope(_)), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("malformed ProtoMessage envelope"),
        "{err}"
    );
    assert!(!err.is_transient());
    assert!(
        buf.is_empty(),
        "the bad frame is consumed; the stream stays aligned"
    );
}

#[test]
fn a_malformed_body_names_its_payload_type() {
    let envelope = ProtoMessage {
        payload_type: 2131,
        // Field 4 (bid) with the wrong wire type: a length-delimited field running past the end.
        payload: Some(Bytes::from_static(&[0x22, 0x7f])),
        client_msg_id: None,
    };
    let mut buf = BytesMut::new();
    FrameCodec::new().encode(&envelope, &mut buf).unwrap();
    let err = EnvelopeCodec::new().decode(&mut buf).unwrap_err();
    match &err {
        ProtoError::MalformedBody {
            payload_type, name, ..
        } => {
            assert_eq!(*payload_type, 2131);
            assert_eq!(*name, "ProtoOASpotEvent");
        }
        other => panic!("expected MalformedBody, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("ProtoOASpotEvent") && text.contains("2131"),
        "{text}"
    );
    assert!(!err.is_transient());
}

#[test]
fn an_unknown_payload_type_is_a_value_and_round_trips_untouched() {
    let body = Bytes::from_static(b"\x10\x2a\x1a\x03abc");
    let raw = ProtoMessage {
        payload_type: 2155,
        payload: Some(body.clone()),
        client_msg_id: Some("c-77".into()),
    };
    let mut wire = BytesMut::new();
    FrameCodec::new().encode(&raw, &mut wire).unwrap();
    let original = wire.clone();

    let decoded = EnvelopeCodec::new().decode(&mut wire).unwrap().unwrap();
    assert_eq!(decoded.client_msg_id.as_deref(), Some("c-77"));
    assert_eq!(
        decoded.payload,
        Payload::Unknown {
            payload_type: 2155,
            bytes: body
        }
    );
    assert_eq!(decoded.payload.name(), "unknown");
    assert_eq!(
        ctrader_proto::payload_type_name(2155),
        Some("PROTO_OA_DEPTH_EVENT")
    );

    let mut again = BytesMut::new();
    EnvelopeCodec::new().encode(decoded, &mut again).unwrap();
    assert_eq!(again, original);
}

#[test]
fn a_number_nobody_knows_has_no_name() {
    assert_eq!(ctrader_proto::payload_type_name(9_999), None);
    assert_eq!(ctrader_proto::payload_type_name(u32::MAX), None);
    assert_eq!(
        ctrader_proto::payload_type_name(51),
        Some("HEARTBEAT_EVENT")
    );
}

#[test]
fn a_known_type_without_payload_field_decodes_as_empty_message() {
    let raw = ProtoMessage {
        payload_type: 51,
        payload: None,
        client_msg_id: None,
    };
    let envelope = Envelope::from_proto(raw).unwrap();
    assert_eq!(
        envelope.payload,
        Payload::HeartbeatEvent(ProtoHeartbeatEvent::default())
    );
}

#[test]
fn typed_messages_come_back_out_of_a_payload() {
    let payload = Payload::from(spot(None, Some(7)));
    assert_eq!(payload.payload_type(), 2131);
    let back = ProtoOaSpotEvent::try_from(payload).unwrap();
    assert_eq!(back.ask, Some(7));
    assert_eq!(back.bid, None);

    let wrong = ProtoOaSpotEvent::try_from(Payload::from(ProtoHeartbeatEvent::default()));
    assert_eq!(
        wrong.unwrap_err().payload_type(),
        51,
        "the other payload is handed back"
    );
}

#[test]
fn wrap_and_envelope_build_the_same_wire_message() {
    let event = spot(Some(3), Some(4));
    let wrapped = ProtoMessage::wrap(&event, Some("c-1".into()));
    let built = Envelope::new(event).with_client_msg_id("c-1").to_proto();
    assert_eq!(wrapped, built);
    assert_eq!(wrapped.payload_type, 2131);
}

#[test]
fn trailing_bytes_at_end_of_stream_are_an_error() {
    let mut buf = BytesMut::from(&[0_u8, 0, 0, 9, 1, 2][..]);
    let err = FrameCodec::new().decode_eof(&mut buf).unwrap_err();
    assert!(matches!(err, ProtoError::Io(_)), "{err:?}");
    assert!(err.is_transient(), "a cut connection is worth a reconnect");
}
