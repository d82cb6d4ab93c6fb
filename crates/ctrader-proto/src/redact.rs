//! Hand-written `Debug` for the messages that carry credentials, so that a token or a client
//! secret never reaches a log line or an error message (prost's derive is skipped for them in
//! `build.rs`).

use std::fmt;

use crate::openapi::{
    ProtoMessage, ProtoOaAccountAuthReq, ProtoOaApplicationAuthReq,
    ProtoOaGetAccountListByAccessTokenReq, ProtoOaGetAccountListByAccessTokenRes,
    ProtoOaRefreshTokenReq, ProtoOaRefreshTokenRes,
};
use crate::payload::payload_type_name;

/// Stands in for a secret in `Debug` output.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Debug for ProtoMessage {
    /// The body may be an authorisation request: show its size, never its bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProtoMessage")
            .field("payload_type", &self.payload_type)
            .field("name", &payload_type_name(self.payload_type))
            .field("payload_len", &self.payload.as_ref().map(bytes::Bytes::len))
            .field("client_msg_id", &self.client_msg_id)
            .finish()
    }
}

impl fmt::Debug for ProtoOaApplicationAuthReq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProtoOaApplicationAuthReq")
            .field("payload_type", &self.payload_type)
            .field("client_id", &self.client_id)
            .field("client_secret", &Redacted)
            .finish()
    }
}

impl fmt::Debug for ProtoOaAccountAuthReq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProtoOaAccountAuthReq")
            .field("payload_type", &self.payload_type)
            .field("ctid_trader_account_id", &self.ctid_trader_account_id)
            .field("access_token", &Redacted)
            .finish()
    }
}

impl fmt::Debug for ProtoOaGetAccountListByAccessTokenReq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProtoOaGetAccountListByAccessTokenReq")
            .field("payload_type", &self.payload_type)
            .field("access_token", &Redacted)
            .finish()
    }
}

impl fmt::Debug for ProtoOaGetAccountListByAccessTokenRes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProtoOaGetAccountListByAccessTokenRes")
            .field("payload_type", &self.payload_type)
            .field("access_token", &Redacted)
            .field("permission_scope", &self.permission_scope)
            .field("ctid_trader_account", &self.ctid_trader_account)
            .finish()
    }
}

impl fmt::Debug for ProtoOaRefreshTokenReq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProtoOaRefreshTokenReq")
            .field("payload_type", &self.payload_type)
            .field("refresh_token", &Redacted)
            .finish()
    }
}

impl fmt::Debug for ProtoOaRefreshTokenRes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProtoOaRefreshTokenRes")
            .field("payload_type", &self.payload_type)
            .field("access_token", &Redacted)
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("refresh_token", &Redacted)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Envelope, Payload};

    #[test]
    fn secrets_never_appear_in_debug_output() {
        let app = ProtoOaApplicationAuthReq {
            payload_type: None,
            client_id: "client-1".into(),
            client_secret: "SECRET-app".into(),
        };
        let account = ProtoOaAccountAuthReq {
            payload_type: None,
            ctid_trader_account_id: 7,
            access_token: "SECRET-access".into(),
        };
        let list_req = ProtoOaGetAccountListByAccessTokenReq {
            payload_type: None,
            access_token: "SECRET-l".into(),
        };
        let list_res = ProtoOaGetAccountListByAccessTokenRes {
            payload_type: None,
            access_token: "SECRET-lr".into(),
            permission_scope: Some(1),
            ctid_trader_account: vec![],
        };
        let refresh_req = ProtoOaRefreshTokenReq {
            payload_type: None,
            refresh_token: "SECRET-refresh".into(),
        };
        let refresh_res = ProtoOaRefreshTokenRes {
            payload_type: None,
            access_token: "SECRET-new-access".into(),
            token_type: "bearer".into(),
            expires_in: 2_628_000,
            refresh_token: "SECRET-new-refresh".into(),
        };
        let rendered = [
            format!("{app:?}"),
            format!("{account:?}"),
            format!("{list_req:?}"),
            format!("{list_res:?}"),
            format!("{refresh_req:?}"),
            format!("{refresh_res:?}"),
            format!("{:?}", Envelope::new(app.clone()).to_proto()),
            format!("{:?}", Envelope::new(account).with_client_msg_id("c-9")),
            format!(
                "{:?}",
                Payload::Unknown {
                    payload_type: 2151,
                    bytes: "SECRET-raw".into()
                }
            ),
        ];
        for text in &rendered {
            assert!(!text.contains("SECRET"), "secret leaked: {text}");
        }
        assert!(
            rendered[0].contains("client-1"),
            "non-secret fields stay visible"
        );
        assert!(rendered[5].contains("bearer"));
        assert!(rendered[6].contains("PROTO_OA_APPLICATION_AUTH_REQ"));
        assert!(rendered[8].contains("PROTO_OA_GET_CTID_PROFILE_BY_TOKEN_REQ"));
    }
}
