//! Framing: a 4-byte unsigned big-endian length of the body, then one `ProtoMessage` body.

use bytes::{Buf, BufMut, BytesMut};
use prost::Message as _;
use tokio_util::codec::{Decoder, Encoder};

use crate::envelope::Envelope;
use crate::error::ProtoError;
use crate::openapi::ProtoMessage;

/// Size of the length prefix in bytes.
pub const LENGTH_PREFIX_LEN: usize = 4;

/// Default cap on a frame body: 4 MiB. The server publishes no maximum; the largest real answers
/// (full symbol lists, deal history pages) stay far below this, and a corrupt prefix must not
/// make us reserve gigabytes.
pub const DEFAULT_MAX_FRAME_LEN: usize = 4 * 1024 * 1024;

/// Codec for raw envelopes ([`ProtoMessage`]); the body is not interpreted.
///
/// Use this when a malformed body must not end the stream: a `FramedRead` stops after the first
/// decoder error, so decode bodies with [`Envelope::from_proto`] yourself and skip bad ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameCodec {
    max_frame_len: usize,
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameCodec {
    /// A codec with the [`DEFAULT_MAX_FRAME_LEN`] cap.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
        }
    }

    /// A codec that rejects bodies longer than `max_frame_len` bytes, in both directions.
    #[must_use]
    pub const fn with_max_frame_len(max_frame_len: usize) -> Self {
        Self { max_frame_len }
    }

    /// The cap on a frame body, in bytes.
    #[must_use]
    pub const fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    /// Length of the next frame's body, if the whole prefix has arrived; errors if it is over the
    /// cap. Never reserves memory.
    fn peek_body_len(&self, src: &BytesMut) -> Result<Option<usize>, ProtoError> {
        let Some(prefix) = src.get(..LENGTH_PREFIX_LEN) else {
            return Ok(None);
        };
        let mut raw = [0_u8; LENGTH_PREFIX_LEN];
        raw.copy_from_slice(prefix);
        // A length that does not fit usize (16-bit targets only) is over any cap anyway.
        let len = usize::try_from(u32::from_be_bytes(raw)).unwrap_or(usize::MAX);
        if len > self.max_frame_len {
            return Err(ProtoError::FrameTooLarge {
                len,
                max: self.max_frame_len,
            });
        }
        Ok(Some(len))
    }

    /// Writes `message` as one frame; errors before writing anything if it is over the cap.
    fn encode_message(&self, message: &ProtoMessage, dst: &mut BytesMut) -> Result<(), ProtoError> {
        let len = message.encoded_len();
        if len > self.max_frame_len {
            return Err(ProtoError::FrameTooLarge {
                len,
                max: self.max_frame_len,
            });
        }
        let prefix = u32::try_from(len).map_err(|_| ProtoError::FrameTooLarge {
            len,
            max: self.max_frame_len,
        })?;
        dst.reserve(LENGTH_PREFIX_LEN + len);
        dst.put_u32(prefix);
        #[allow(clippy::expect_used)]
        // `encode` fails only when the buffer has less room than `encoded_len()`; a BytesMut
        // grows on demand (its `remaining_mut` is `usize::MAX - len`), and room was reserved above.
        message
            .encode(dst)
            .expect("BytesMut always has room for an encoded message");
        Ok(())
    }
}

impl Decoder for FrameCodec {
    type Item = ProtoMessage;
    type Error = ProtoError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<ProtoMessage>, ProtoError> {
        let Some(len) = self.peek_body_len(src)? else {
            return Ok(None);
        };
        let frame_len = LENGTH_PREFIX_LEN + len;
        if src.len() < frame_len {
            // The prefix passed the cap check, so this reservation is bounded by the cap.
            src.reserve(frame_len - src.len());
            return Ok(None);
        }
        src.advance(LENGTH_PREFIX_LEN);
        // `freeze` makes the body a zero-copy `Bytes`, and with it the envelope's payload.
        let body = src.split_to(len).freeze();
        ProtoMessage::decode(body)
            .map(Some)
            .map_err(ProtoError::MalformedEnvelope)
    }
}

impl Encoder<ProtoMessage> for FrameCodec {
    type Error = ProtoError;

    fn encode(&mut self, item: ProtoMessage, dst: &mut BytesMut) -> Result<(), ProtoError> {
        self.encode_message(&item, dst)
    }
}

impl Encoder<&ProtoMessage> for FrameCodec {
    type Error = ProtoError;

    fn encode(&mut self, item: &ProtoMessage, dst: &mut BytesMut) -> Result<(), ProtoError> {
        self.encode_message(item, dst)
    }
}

/// Codec for typed envelopes ([`Envelope`]): framing plus payload-type dispatch.
///
/// A body that does not parse as its announced type is a decoder error, which ends a
/// `FramedRead` stream; an unknown payload type is not an error ([`crate::Payload::Unknown`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EnvelopeCodec {
    frames: FrameCodec,
}

impl EnvelopeCodec {
    /// A codec with the [`DEFAULT_MAX_FRAME_LEN`] cap.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            frames: FrameCodec::new(),
        }
    }

    /// A codec that rejects bodies longer than `max_frame_len` bytes, in both directions.
    #[must_use]
    pub const fn with_max_frame_len(max_frame_len: usize) -> Self {
        Self {
            frames: FrameCodec::with_max_frame_len(max_frame_len),
        }
    }

    /// The cap on a frame body, in bytes.
    #[must_use]
    pub const fn max_frame_len(&self) -> usize {
        self.frames.max_frame_len()
    }
}

impl Decoder for EnvelopeCodec {
    type Item = Envelope;
    type Error = ProtoError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Envelope>, ProtoError> {
        match self.frames.decode(src)? {
            Some(message) => Envelope::from_proto(message).map(Some),
            None => Ok(None),
        }
    }
}

impl Encoder<Envelope> for EnvelopeCodec {
    type Error = ProtoError;

    fn encode(&mut self, item: Envelope, dst: &mut BytesMut) -> Result<(), ProtoError> {
        self.frames.encode_message(&ProtoMessage::from(item), dst)
    }
}

impl Encoder<&Envelope> for EnvelopeCodec {
    type Error = ProtoError;

    fn encode(&mut self, item: &Envelope, dst: &mut BytesMut) -> Result<(), ProtoError> {
        self.frames.encode_message(&item.to_proto(), dst)
    }
}
