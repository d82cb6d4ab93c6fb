//! The one error type of the wire layer.

use thiserror::Error;

/// Why a frame could not be read or written.
#[derive(Debug, Error)]
pub enum ProtoError {
    /// A frame's length prefix (or an outgoing message) is larger than the configured cap.
    ///
    /// Checked before any buffer is reserved, so a hostile or corrupt prefix cannot make us
    /// allocate gigabytes.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// Body length announced by the prefix (or needed by the outgoing message).
        len: usize,
        /// The configured cap.
        max: usize,
    },
    /// The frame body is not a valid `ProtoMessage` envelope.
    #[error("malformed ProtoMessage envelope: {0}")]
    MalformedEnvelope(#[source] prost::DecodeError),
    /// The envelope is fine but its payload does not decode as the announced message type.
    #[error("malformed {name} body (payload type {payload_type}): {source}")]
    MalformedBody {
        /// The envelope's `payloadType`.
        payload_type: u32,
        /// The schema name of that message (only modelled types are decoded, so it is known).
        name: &'static str,
        /// What prost found wrong.
        #[source]
        source: prost::DecodeError,
    },
    /// Reading from or writing to the transport failed.
    #[error("transport I/O failed: {0}")]
    Io(#[from] std::io::Error),
}

impl ProtoError {
    /// True when reconnecting may help: only transport failures are transient.
    ///
    /// A frame that is too large or malformed came from a peer that speaks the protocol wrongly;
    /// sending the same request again would get the same answer.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Io(_))
    }
}
