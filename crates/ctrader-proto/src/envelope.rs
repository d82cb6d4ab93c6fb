//! The `ProtoMessage` envelope with a typed body.

use bytes::Bytes;

use crate::error::ProtoError;
use crate::openapi::ProtoMessage;
use crate::payload::{OpenApiMessage, Payload};

/// One decoded frame: the typed body and the `clientMsgId` that matches a reply to its request.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// Chosen by the sender of a request, echoed by the server in the reply.
    pub client_msg_id: Option<String>,
    /// The typed body.
    pub payload: Payload,
}

impl Envelope {
    /// An envelope without `clientMsgId` (events, heartbeats).
    #[must_use]
    pub fn new(payload: impl Into<Payload>) -> Self {
        Self {
            client_msg_id: None,
            payload: payload.into(),
        }
    }

    /// Sets the `clientMsgId` the reply will carry.
    #[must_use]
    pub fn with_client_msg_id(mut self, client_msg_id: impl Into<String>) -> Self {
        self.client_msg_id = Some(client_msg_id.into());
        self
    }

    /// The body's payload type number.
    #[must_use]
    pub fn payload_type(&self) -> u32 {
        self.payload.payload_type()
    }

    /// Decodes the body of a wire envelope.
    ///
    /// # Errors
    /// [`ProtoError::MalformedBody`] when the body does not parse as its announced type.
    pub fn from_proto(message: ProtoMessage) -> Result<Self, ProtoError> {
        let ProtoMessage {
            payload_type,
            payload,
            client_msg_id,
        } = message;
        let payload = Payload::decode(payload_type, payload.unwrap_or_default())?;
        Ok(Self {
            client_msg_id,
            payload,
        })
    }

    /// Builds the wire envelope. The inner message's own `payloadType` field is left as the
    /// caller set it (normally unset, as the official SDKs do); the envelope always carries the
    /// number, and always carries a `payload` field, even an empty one, as the SDKs do.
    #[must_use]
    pub fn to_proto(&self) -> ProtoMessage {
        ProtoMessage {
            payload_type: self.payload.payload_type(),
            payload: Some(self.payload.encode_body()),
            client_msg_id: self.client_msg_id.clone(),
        }
    }
}

impl TryFrom<ProtoMessage> for Envelope {
    type Error = ProtoError;

    fn try_from(message: ProtoMessage) -> Result<Self, ProtoError> {
        Self::from_proto(message)
    }
}

impl From<Envelope> for ProtoMessage {
    fn from(envelope: Envelope) -> Self {
        let payload_type = envelope.payload.payload_type();
        let payload = match envelope.payload {
            // Hand the untouched bytes back without a copy.
            Payload::Unknown { bytes, .. } => bytes,
            typed => typed.encode_body(),
        };
        Self {
            payload_type,
            payload: Some(payload),
            client_msg_id: envelope.client_msg_id,
        }
    }
}

impl ProtoMessage {
    /// Wraps one message in an envelope without moving it.
    #[must_use]
    pub fn wrap<M: OpenApiMessage>(message: &M, client_msg_id: Option<String>) -> Self {
        Self {
            payload_type: M::PAYLOAD_TYPE,
            payload: Some(Bytes::from(message.encode_to_vec())),
            client_msg_id,
        }
    }
}
