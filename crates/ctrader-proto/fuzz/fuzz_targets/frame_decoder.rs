//! Fuzzes the frame decoder with arbitrary bytes arriving in arbitrary pieces.
//!
//! Checks, beyond "no panic": the buffer never grows past one capped frame whatever a prefix
//! announces, an over-cap prefix is reported as `FrameTooLarge` with the right numbers, and
//! anything that decodes re-encodes to bytes that decode and re-encode identically.
#![no_main]

use bytes::BytesMut;
use ctrader_proto::{Envelope, EnvelopeCodec, LENGTH_PREFIX_LEN, ProtoError};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::{Decoder, Encoder};

/// Re-encoding may add a few bytes (required fields are always written), so check the round
/// trip with a roomier cap than the decoder's.
fn reencode(envelope: &Envelope) -> BytesMut {
    let mut wire = BytesMut::new();
    EnvelopeCodec::with_max_frame_len(usize::MAX)
        .encode(envelope, &mut wire)
        .expect("a decoded envelope always re-encodes");
    wire
}

fuzz_target!(|data: &[u8]| {
    // First byte: the cap (small caps reach the limit checks); second: the read size.
    let [cap_selector, chunk_selector, input @ ..] = data else {
        return;
    };
    let max_frame_len = usize::from(*cap_selector) * 64;
    let chunk = usize::from(*chunk_selector).max(1);
    let mut codec = EnvelopeCodec::with_max_frame_len(max_frame_len);
    let mut buf = BytesMut::new();

    for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.capacity();
            let result = codec.decode(&mut buf);
            let bound = 2 * before.max(LENGTH_PREFIX_LEN + max_frame_len);
            assert!(buf.capacity() <= bound, "capacity {} > {bound}", buf.capacity());
            match result {
                Ok(Some(envelope)) => {
                    let first = reencode(&envelope);
                    let again = EnvelopeCodec::with_max_frame_len(usize::MAX)
                        .decode(&mut first.clone())
                        .expect("our own encoding decodes")
                        .expect("a whole frame");
                    assert_eq!(reencode(&again), first, "re-encoding is stable");
                }
                Ok(None) => break,
                Err(ProtoError::FrameTooLarge { len, max }) => {
                    assert!(len > max && max == max_frame_len);
                    return;
                }
                Err(ProtoError::MalformedEnvelope(_) | ProtoError::MalformedBody { .. }) => return,
                Err(ProtoError::Io(e)) => panic!("the decoder does no I/O, yet: {e}"),
            }
        }
    }
});
