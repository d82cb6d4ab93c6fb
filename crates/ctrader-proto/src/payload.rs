//! The mapping between payload type numbers and message types.
//!
//! Every modelled message implements [`OpenApiMessage`] (its number and schema name) and converts
//! into and out of [`Payload`], the typed body of a frame. A number the schema does not model
//! decodes to [`Payload::Unknown`], never to an error or a panic, so new server messages cannot
//! break a running bot.

use std::fmt;

use bytes::Bytes;
use prost::Message as _;

use crate::error::ProtoError;
use crate::openapi::{
    ProtoErrorRes, ProtoHeartbeatEvent, ProtoOaAccountAuthReq, ProtoOaAccountAuthRes,
    ProtoOaAccountDisconnectEvent, ProtoOaAccountLogoutReq, ProtoOaAccountLogoutRes,
    ProtoOaAccountsTokenInvalidatedEvent, ProtoOaAmendOrderReq, ProtoOaAmendPositionSltpReq,
    ProtoOaApplicationAuthReq, ProtoOaApplicationAuthRes, ProtoOaAssetListReq, ProtoOaAssetListRes,
    ProtoOaCancelOrderReq, ProtoOaClientDisconnectEvent, ProtoOaClosePositionReq,
    ProtoOaDealListReq, ProtoOaDealListRes, ProtoOaErrorRes, ProtoOaExecutionEvent,
    ProtoOaGetAccountListByAccessTokenReq, ProtoOaGetAccountListByAccessTokenRes,
    ProtoOaGetPositionUnrealizedPnLReq, ProtoOaGetPositionUnrealizedPnLRes, ProtoOaGetTickDataReq,
    ProtoOaGetTickDataRes, ProtoOaGetTrendbarsReq, ProtoOaGetTrendbarsRes,
    ProtoOaMarginCallTriggerEvent, ProtoOaMarginCallUpdateEvent, ProtoOaMarginChangedEvent,
    ProtoOaNewOrderReq, ProtoOaOrderErrorEvent, ProtoOaOrderListReq, ProtoOaOrderListRes,
    ProtoOaPayloadType, ProtoOaReconcileReq, ProtoOaReconcileRes, ProtoOaRefreshTokenReq,
    ProtoOaRefreshTokenRes, ProtoOaSpotEvent, ProtoOaSubscribeLiveTrendbarReq,
    ProtoOaSubscribeLiveTrendbarRes, ProtoOaSubscribeSpotsReq, ProtoOaSubscribeSpotsRes,
    ProtoOaSymbolByIdReq, ProtoOaSymbolByIdRes, ProtoOaSymbolChangedEvent,
    ProtoOaSymbolsForConversionReq, ProtoOaSymbolsForConversionRes, ProtoOaSymbolsListReq,
    ProtoOaSymbolsListRes, ProtoOaTraderReq, ProtoOaTraderRes, ProtoOaTraderUpdatedEvent,
    ProtoOaTrailingSlChangedEvent, ProtoOaUnsubscribeLiveTrendbarReq,
    ProtoOaUnsubscribeLiveTrendbarRes, ProtoOaUnsubscribeSpotsReq, ProtoOaUnsubscribeSpotsRes,
    ProtoOaVersionReq, ProtoOaVersionRes, ProtoPayloadType,
};

/// A message type of the schema that travels as a frame body under its own payload type.
pub trait OpenApiMessage: prost::Message + Default + Into<Payload> + TryFrom<Payload> {
    /// The envelope's `payloadType` for this message.
    const PAYLOAD_TYPE: u32;
    /// The message's name in the schema (e.g. `ProtoOASpotEvent`).
    const NAME: &'static str;
}

/// The schema's name of a payload type number (e.g. `PROTO_OA_SPOT_EVENT`), if it has one.
///
/// Knows every Open API number, including those this crate does not model as messages.
#[must_use]
pub fn payload_type_name(payload_type: u32) -> Option<&'static str> {
    let number = i32::try_from(payload_type).ok()?;
    ProtoOaPayloadType::try_from(number)
        .map(|t| t.as_str_name())
        .or_else(|_| ProtoPayloadType::try_from(number).map(|t| t.as_str_name()))
        .ok()
}

macro_rules! payloads {
    ($( $(#[$doc:meta])* $variant:ident($ty:ident) = $number:literal, $name:literal; )*) => {
        /// The typed body of one frame: one variant per modelled message, plus `Unknown`.
        #[derive(Clone, PartialEq)]
        #[allow(clippy::large_enum_variant)] // Moved once per frame; boxing would cost an allocation per quote.
        pub enum Payload {
            $( $(#[$doc])* $variant($ty), )*
            /// A payload type this crate does not model; the raw body is kept untouched.
            Unknown {
                /// The envelope's `payloadType`.
                payload_type: u32,
                /// The undecoded body.
                bytes: Bytes,
            },
        }

        impl Payload {
            /// The envelope's `payloadType` for this body.
            #[must_use]
            pub fn payload_type(&self) -> u32 {
                match self {
                    $( Self::$variant(_) => $number, )*
                    Self::Unknown { payload_type, .. } => *payload_type,
                }
            }

            /// The schema name of the message (`"unknown"` for an unmodelled payload type).
            #[must_use]
            pub fn name(&self) -> &'static str {
                match self {
                    $( Self::$variant(_) => $name, )*
                    Self::Unknown { .. } => "unknown",
                }
            }

            /// Decodes a frame body of the given payload type.
            ///
            /// # Errors
            /// [`ProtoError::MalformedBody`] when the body does not parse as the modelled message;
            /// an unmodelled payload type is not an error but [`Payload::Unknown`].
            pub fn decode(payload_type: u32, bytes: Bytes) -> Result<Self, ProtoError> {
                match payload_type {
                    $( $number => $ty::decode(bytes).map(Self::$variant).map_err(|source| {
                        ProtoError::MalformedBody { payload_type, name: $name, source }
                    }), )*
                    _ => Ok(Self::Unknown { payload_type, bytes }),
                }
            }

            /// Serializes the body (an `Unknown` body is returned as it came).
            #[must_use]
            pub fn encode_body(&self) -> Bytes {
                match self {
                    $( Self::$variant(m) => Bytes::from(m.encode_to_vec()), )*
                    Self::Unknown { bytes, .. } => bytes.clone(),
                }
            }
        }

        impl fmt::Debug for Payload {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $( Self::$variant(m) => f.debug_tuple(stringify!($variant)).field(m).finish(), )*
                    // The body of an unmodelled type may hold credentials: show only its size.
                    Self::Unknown { payload_type, bytes } => f
                        .debug_struct("Unknown")
                        .field("payload_type", payload_type)
                        .field("name", &payload_type_name(*payload_type))
                        .field("len", &bytes.len())
                        .finish(),
                }
            }
        }

        $(
            impl OpenApiMessage for $ty {
                const PAYLOAD_TYPE: u32 = $number;
                const NAME: &'static str = $name;
            }

            impl From<$ty> for Payload {
                fn from(message: $ty) -> Self {
                    Self::$variant(message)
                }
            }

            impl TryFrom<Payload> for $ty {
                type Error = Payload;

                /// Takes the message out of a payload of this type; any other payload is handed back.
                fn try_from(payload: Payload) -> Result<Self, Payload> {
                    match payload {
                        Payload::$variant(message) => Ok(message),
                        other => Err(other),
                    }
                }
            }
        )*

        /// Every modelled payload type number, in declaration order.
        pub const MODELLED_PAYLOAD_TYPES: &[u32] = &[$( $number, )*];

        #[cfg(test)]
        mod generated_tests {
            use super::*;

            /// Each message's own `payloadType` default (from the schema) equals the number we map
            /// it to, so the table cannot drift from the `.proto` files.
            #[test]
            fn numbers_match_schema_defaults() {
                $(
                    assert_eq!(
                        i32::from($ty::default().payload_type()),
                        i32::try_from($number).unwrap(),
                        "{}",
                        $name
                    );
                )*
            }
        }
    };
}

payloads! {
    /// Keep-alive (51).
    HeartbeatEvent(ProtoHeartbeatEvent) = 51, "ProtoHeartbeatEvent";
    /// Error of the common layer (50).
    CommonErrorRes(ProtoErrorRes) = 50, "ProtoErrorRes";
    /// Application authorisation request (2100).
    ApplicationAuthReq(ProtoOaApplicationAuthReq) = 2100, "ProtoOAApplicationAuthReq";
    /// Application authorisation response (2101).
    ApplicationAuthRes(ProtoOaApplicationAuthRes) = 2101, "ProtoOAApplicationAuthRes";
    /// Account authorisation request (2102).
    AccountAuthReq(ProtoOaAccountAuthReq) = 2102, "ProtoOAAccountAuthReq";
    /// Account authorisation response (2103).
    AccountAuthRes(ProtoOaAccountAuthRes) = 2103, "ProtoOAAccountAuthRes";
    /// Server version request (2104).
    VersionReq(ProtoOaVersionReq) = 2104, "ProtoOAVersionReq";
    /// Server version response (2105).
    VersionRes(ProtoOaVersionRes) = 2105, "ProtoOAVersionRes";
    /// New order request (2106); answered by execution, order error or error events.
    NewOrderReq(ProtoOaNewOrderReq) = 2106, "ProtoOANewOrderReq";
    /// Trailing stop moved (2107).
    TrailingSlChangedEvent(ProtoOaTrailingSlChangedEvent) = 2107, "ProtoOATrailingSLChangedEvent";
    /// Cancel a pending order (2108).
    CancelOrderReq(ProtoOaCancelOrderReq) = 2108, "ProtoOACancelOrderReq";
    /// Amend a pending order (2109).
    AmendOrderReq(ProtoOaAmendOrderReq) = 2109, "ProtoOAAmendOrderReq";
    /// Amend a position's stop loss / take profit (2110).
    AmendPositionSltpReq(ProtoOaAmendPositionSltpReq) = 2110, "ProtoOAAmendPositionSLTPReq";
    /// Close (part of) a position (2111).
    ClosePositionReq(ProtoOaClosePositionReq) = 2111, "ProtoOAClosePositionReq";
    /// Asset list request (2112).
    AssetListReq(ProtoOaAssetListReq) = 2112, "ProtoOAAssetListReq";
    /// Asset list response (2113).
    AssetListRes(ProtoOaAssetListRes) = 2113, "ProtoOAAssetListRes";
    /// Symbol list request (2114).
    SymbolsListReq(ProtoOaSymbolsListReq) = 2114, "ProtoOASymbolsListReq";
    /// Symbol list response (2115).
    SymbolsListRes(ProtoOaSymbolsListRes) = 2115, "ProtoOASymbolsListRes";
    /// Full symbol request (2116).
    SymbolByIdReq(ProtoOaSymbolByIdReq) = 2116, "ProtoOASymbolByIdReq";
    /// Full symbol response (2117).
    SymbolByIdRes(ProtoOaSymbolByIdRes) = 2117, "ProtoOASymbolByIdRes";
    /// Conversion chain request (2118).
    SymbolsForConversionReq(ProtoOaSymbolsForConversionReq) = 2118, "ProtoOASymbolsForConversionReq";
    /// Conversion chain response (2119).
    SymbolsForConversionRes(ProtoOaSymbolsForConversionRes) = 2119, "ProtoOASymbolsForConversionRes";
    /// Symbols changed on the server (2120).
    SymbolChangedEvent(ProtoOaSymbolChangedEvent) = 2120, "ProtoOASymbolChangedEvent";
    /// Trader account request (2121).
    TraderReq(ProtoOaTraderReq) = 2121, "ProtoOATraderReq";
    /// Trader account response (2122).
    TraderRes(ProtoOaTraderRes) = 2122, "ProtoOATraderRes";
    /// Trader account changed (2123).
    TraderUpdatedEvent(ProtoOaTraderUpdatedEvent) = 2123, "ProtoOATraderUpdatedEvent";
    /// Open positions and pending orders request (2124).
    ReconcileReq(ProtoOaReconcileReq) = 2124, "ProtoOAReconcileReq";
    /// Open positions and pending orders response (2125).
    ReconcileRes(ProtoOaReconcileRes) = 2125, "ProtoOAReconcileRes";
    /// Order, position or balance event (2126).
    ExecutionEvent(ProtoOaExecutionEvent) = 2126, "ProtoOAExecutionEvent";
    /// Spot subscription request (2127).
    SubscribeSpotsReq(ProtoOaSubscribeSpotsReq) = 2127, "ProtoOASubscribeSpotsReq";
    /// Spot subscription response (2128).
    SubscribeSpotsRes(ProtoOaSubscribeSpotsRes) = 2128, "ProtoOASubscribeSpotsRes";
    /// Spot unsubscription request (2129).
    UnsubscribeSpotsReq(ProtoOaUnsubscribeSpotsReq) = 2129, "ProtoOAUnsubscribeSpotsReq";
    /// Spot unsubscription response (2130).
    UnsubscribeSpotsRes(ProtoOaUnsubscribeSpotsRes) = 2130, "ProtoOAUnsubscribeSpotsRes";
    /// Price update (2131).
    SpotEvent(ProtoOaSpotEvent) = 2131, "ProtoOASpotEvent";
    /// Order request failed validation (2132).
    OrderErrorEvent(ProtoOaOrderErrorEvent) = 2132, "ProtoOAOrderErrorEvent";
    /// Historical deals request (2133).
    DealListReq(ProtoOaDealListReq) = 2133, "ProtoOADealListReq";
    /// Historical deals response (2134).
    DealListRes(ProtoOaDealListRes) = 2134, "ProtoOADealListRes";
    /// Live bar subscription request (2135).
    SubscribeLiveTrendbarReq(ProtoOaSubscribeLiveTrendbarReq) = 2135, "ProtoOASubscribeLiveTrendbarReq";
    /// Live bar unsubscription request (2136).
    UnsubscribeLiveTrendbarReq(ProtoOaUnsubscribeLiveTrendbarReq) = 2136, "ProtoOAUnsubscribeLiveTrendbarReq";
    /// Historical bars request (2137).
    GetTrendbarsReq(ProtoOaGetTrendbarsReq) = 2137, "ProtoOAGetTrendbarsReq";
    /// Historical bars response (2138).
    GetTrendbarsRes(ProtoOaGetTrendbarsRes) = 2138, "ProtoOAGetTrendbarsRes";
    /// Historical ticks request (2145).
    GetTickDataReq(ProtoOaGetTickDataReq) = 2145, "ProtoOAGetTickDataReq";
    /// Historical ticks response (2146).
    GetTickDataRes(ProtoOaGetTickDataRes) = 2146, "ProtoOAGetTickDataRes";
    /// A position's used margin changed (2141).
    MarginChangedEvent(ProtoOaMarginChangedEvent) = 2141, "ProtoOAMarginChangedEvent";
    /// Open API error (2142).
    ErrorRes(ProtoOaErrorRes) = 2142, "ProtoOAErrorRes";
    /// Account sessions ended because their token changed (2147).
    AccountsTokenInvalidatedEvent(ProtoOaAccountsTokenInvalidatedEvent) = 2147, "ProtoOAAccountsTokenInvalidatedEvent";
    /// The server ended the application session (2148).
    ClientDisconnectEvent(ProtoOaClientDisconnectEvent) = 2148, "ProtoOAClientDisconnectEvent";
    /// Accounts of an access token, request (2149).
    GetAccountListByAccessTokenReq(ProtoOaGetAccountListByAccessTokenReq) = 2149, "ProtoOAGetAccountListByAccessTokenReq";
    /// Accounts of an access token, response (2150).
    GetAccountListByAccessTokenRes(ProtoOaGetAccountListByAccessTokenRes) = 2150, "ProtoOAGetAccountListByAccessTokenRes";
    /// Account logout request (2162).
    AccountLogoutReq(ProtoOaAccountLogoutReq) = 2162, "ProtoOAAccountLogoutReq";
    /// Account logout response (2163).
    AccountLogoutRes(ProtoOaAccountLogoutRes) = 2163, "ProtoOAAccountLogoutRes";
    /// The server dropped one account's session (2164).
    AccountDisconnectEvent(ProtoOaAccountDisconnectEvent) = 2164, "ProtoOAAccountDisconnectEvent";
    /// Live bar subscription response (2165).
    SubscribeLiveTrendbarRes(ProtoOaSubscribeLiveTrendbarRes) = 2165, "ProtoOASubscribeLiveTrendbarRes";
    /// Live bar unsubscription response (2166).
    UnsubscribeLiveTrendbarRes(ProtoOaUnsubscribeLiveTrendbarRes) = 2166, "ProtoOAUnsubscribeLiveTrendbarRes";
    /// A margin call threshold changed (2171).
    MarginCallUpdateEvent(ProtoOaMarginCallUpdateEvent) = 2171, "ProtoOAMarginCallUpdateEvent";
    /// A margin call was triggered (2172).
    MarginCallTriggerEvent(ProtoOaMarginCallTriggerEvent) = 2172, "ProtoOAMarginCallTriggerEvent";
    /// Token refresh request (2173).
    RefreshTokenReq(ProtoOaRefreshTokenReq) = 2173, "ProtoOARefreshTokenReq";
    /// Token refresh response (2174).
    RefreshTokenRes(ProtoOaRefreshTokenRes) = 2174, "ProtoOARefreshTokenRes";
    /// Historical orders request (2175).
    OrderListReq(ProtoOaOrderListReq) = 2175, "ProtoOAOrderListReq";
    /// Historical orders response (2176).
    OrderListRes(ProtoOaOrderListRes) = 2176, "ProtoOAOrderListRes";
    /// The broker's unrealized PnL of open positions, request (2187).
    GetPositionUnrealizedPnlReq(ProtoOaGetPositionUnrealizedPnLReq) = 2187, "ProtoOAGetPositionUnrealizedPnLReq";
    /// The broker's unrealized PnL of open positions, response (2188).
    GetPositionUnrealizedPnlRes(ProtoOaGetPositionUnrealizedPnLRes) = 2188, "ProtoOAGetPositionUnrealizedPnLRes";
}
