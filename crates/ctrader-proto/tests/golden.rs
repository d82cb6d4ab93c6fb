//! Every frame encoded by the official SDK (`testdata/ctrader-golden-frames.json`) decodes to
//! exactly the listed values, and encoding those values gives back exactly the same bytes.
//!
//! The JSON -> message mapping is written out by hand per message type: every JSON key must be
//! consumed (so no listed value goes unchecked) and every field not listed must be unset (the
//! whole-message equality checks that).

// Test helpers: a panic with a message is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::collections::BTreeSet;

use bytes::BytesMut;
use ctrader_proto::openapi::{
    ProtoHeartbeatEvent, ProtoOaAccountAuthReq, ProtoOaApplicationAuthReq,
    ProtoOaApplicationAuthRes, ProtoOaDeal, ProtoOaExecutionEvent, ProtoOaLightSymbol,
    ProtoOaNewOrderReq, ProtoOaOrder, ProtoOaOrderErrorEvent, ProtoOaPosition, ProtoOaSpotEvent,
    ProtoOaSubscribeSpotsReq, ProtoOaSymbolsListRes, ProtoOaTradeData,
};
use ctrader_proto::{Envelope, EnvelopeCodec, FrameCodec, Payload};
use serde_json::{Map, Value};
use tokio_util::codec::{Decoder, Encoder};

const GOLDEN: &str = include_str!("../../../testdata/ctrader-golden-frames.json");

/// A JSON object whose keys must all be read before `finish`.
struct Fields<'a> {
    context: String,
    map: &'a Map<String, Value>,
    used: RefCell<BTreeSet<String>>,
}

impl<'a> Fields<'a> {
    fn new(context: impl Into<String>, value: &'a Value) -> Self {
        let context = context.into();
        let map = value
            .as_object()
            .unwrap_or_else(|| panic!("{context}: not an object"));
        Self {
            context,
            map,
            used: RefCell::new(BTreeSet::new()),
        }
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.used.borrow_mut().insert(key.to_owned());
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// 64-bit integers are JSON strings (proto3 JSON mapping).
    fn i64(&self, key: &str) -> Option<i64> {
        self.get(key).map(|v| {
            v.as_str()
                .unwrap_or_else(|| panic!("{}.{key}: 64-bit ints are strings", self.context))
                .parse()
                .unwrap_or_else(|e| panic!("{}.{key}: {e}", self.context))
        })
    }

    fn u64(&self, key: &str) -> Option<u64> {
        self.get(key).map(|v| {
            v.as_str()
                .unwrap_or_else(|| panic!("{}.{key}: 64-bit ints are strings", self.context))
                .parse()
                .unwrap_or_else(|e| panic!("{}.{key}: {e}", self.context))
        })
    }

    /// 32-bit integers and enums are JSON numbers.
    fn i32(&self, key: &str) -> Option<i32> {
        self.get(key).map(|v| {
            let n = v
                .as_i64()
                .unwrap_or_else(|| panic!("{}.{key}: not a number", self.context));
            i32::try_from(n).unwrap()
        })
    }

    fn u32(&self, key: &str) -> Option<u32> {
        self.get(key).map(|v| {
            let n = v
                .as_u64()
                .unwrap_or_else(|| panic!("{}.{key}: not a number", self.context));
            u32::try_from(n).unwrap()
        })
    }

    fn f64(&self, key: &str) -> Option<f64> {
        self.get(key).map(|v| {
            v.as_f64()
                .unwrap_or_else(|| panic!("{}.{key}", self.context))
        })
    }

    fn bool(&self, key: &str) -> Option<bool> {
        self.get(key).map(|v| {
            v.as_bool()
                .unwrap_or_else(|| panic!("{}.{key}", self.context))
        })
    }

    fn string(&self, key: &str) -> Option<String> {
        self.get(key).map(|v| {
            v.as_str()
                .unwrap_or_else(|| panic!("{}.{key}", self.context))
                .to_owned()
        })
    }

    fn object(&self, key: &str) -> Option<Fields<'a>> {
        self.get(key)
            .map(|v| Fields::new(format!("{}.{key}", self.context), v))
    }

    fn list(&self, key: &str) -> Vec<&'a Value> {
        self.get(key)
            .map(|v| {
                v.as_array()
                    .unwrap_or_else(|| panic!("{}.{key}", self.context))
                    .iter()
                    .collect()
            })
            .unwrap_or_default()
    }

    fn req<T>(&self, key: &str, value: Option<T>) -> T {
        value.unwrap_or_else(|| panic!("{}.{key}: required field missing", self.context))
    }

    /// Every key of the JSON object was read: nothing listed went unchecked.
    fn finish(self) {
        let used = self.used.borrow();
        for key in self.map.keys() {
            assert!(
                used.contains(key),
                "{}.{key}: listed but not checked",
                self.context
            );
        }
    }
}

fn trade_data(f: Fields<'_>) -> ProtoOaTradeData {
    let m = ProtoOaTradeData {
        symbol_id: f.req("symbolId", f.i64("symbolId")),
        volume: f.req("volume", f.i64("volume")),
        trade_side: f.req("tradeSide", f.i32("tradeSide")),
        open_timestamp: f.i64("openTimestamp"),
        label: f.string("label"),
        guaranteed_stop_loss: f.bool("guaranteedStopLoss"),
        comment: f.string("comment"),
        measurement_units: f.string("measurementUnits"),
        close_timestamp: f.u64("closeTimestamp"),
    };
    f.finish();
    m
}

fn position(f: Fields<'_>) -> ProtoOaPosition {
    let m = ProtoOaPosition {
        position_id: f.req("positionId", f.i64("positionId")),
        trade_data: trade_data(f.req("tradeData", f.object("tradeData"))),
        position_status: f.req("positionStatus", f.i32("positionStatus")),
        swap: f.req("swap", f.i64("swap")),
        price: f.f64("price"),
        stop_loss: f.f64("stopLoss"),
        take_profit: f.f64("takeProfit"),
        utc_last_update_timestamp: f.i64("utcLastUpdateTimestamp"),
        commission: f.i64("commission"),
        margin_rate: f.f64("marginRate"),
        mirroring_commission: f.i64("mirroringCommission"),
        guaranteed_stop_loss: f.bool("guaranteedStopLoss"),
        used_margin: f.u64("usedMargin"),
        stop_loss_trigger_method: f.i32("stopLossTriggerMethod"),
        money_digits: f.u32("moneyDigits"),
        trailing_stop_loss: f.bool("trailingStopLoss"),
    };
    f.finish();
    m
}

fn order(f: Fields<'_>) -> ProtoOaOrder {
    let m = ProtoOaOrder {
        order_id: f.req("orderId", f.i64("orderId")),
        trade_data: trade_data(f.req("tradeData", f.object("tradeData"))),
        order_type: f.req("orderType", f.i32("orderType")),
        order_status: f.req("orderStatus", f.i32("orderStatus")),
        expiration_timestamp: f.i64("expirationTimestamp"),
        execution_price: f.f64("executionPrice"),
        executed_volume: f.i64("executedVolume"),
        utc_last_update_timestamp: f.i64("utcLastUpdateTimestamp"),
        base_slippage_price: f.f64("baseSlippagePrice"),
        slippage_in_points: f.i64("slippageInPoints"),
        closing_order: f.bool("closingOrder"),
        limit_price: f.f64("limitPrice"),
        stop_price: f.f64("stopPrice"),
        stop_loss: f.f64("stopLoss"),
        take_profit: f.f64("takeProfit"),
        client_order_id: f.string("clientOrderId"),
        time_in_force: f.i32("timeInForce"),
        position_id: f.i64("positionId"),
        relative_stop_loss: f.i64("relativeStopLoss"),
        relative_take_profit: f.i64("relativeTakeProfit"),
        is_stop_out: f.bool("isStopOut"),
        trailing_stop_loss: f.bool("trailingStopLoss"),
        stop_trigger_method: f.i32("stopTriggerMethod"),
    };
    f.finish();
    m
}

fn deal(f: Fields<'_>) -> ProtoOaDeal {
    assert!(
        f.get("closePositionDetail").is_none(),
        "golden deals are opening deals"
    );
    let m = ProtoOaDeal {
        deal_id: f.req("dealId", f.i64("dealId")),
        order_id: f.req("orderId", f.i64("orderId")),
        position_id: f.req("positionId", f.i64("positionId")),
        volume: f.req("volume", f.i64("volume")),
        filled_volume: f.req("filledVolume", f.i64("filledVolume")),
        symbol_id: f.req("symbolId", f.i64("symbolId")),
        create_timestamp: f.req("createTimestamp", f.i64("createTimestamp")),
        execution_timestamp: f.req("executionTimestamp", f.i64("executionTimestamp")),
        utc_last_update_timestamp: f.i64("utcLastUpdateTimestamp"),
        execution_price: f.f64("executionPrice"),
        trade_side: f.req("tradeSide", f.i32("tradeSide")),
        deal_status: f.req("dealStatus", f.i32("dealStatus")),
        margin_rate: f.f64("marginRate"),
        commission: f.i64("commission"),
        base_to_usd_conversion_rate: f.f64("baseToUsdConversionRate"),
        close_position_detail: None,
        money_digits: f.u32("moneyDigits"),
    };
    f.finish();
    m
}

fn light_symbol(f: Fields<'_>) -> ProtoOaLightSymbol {
    let m = ProtoOaLightSymbol {
        symbol_id: f.req("symbolId", f.i64("symbolId")),
        symbol_name: f.string("symbolName"),
        enabled: f.bool("enabled"),
        base_asset_id: f.i64("baseAssetId"),
        quote_asset_id: f.i64("quoteAssetId"),
        symbol_category_id: f.i64("symbolCategoryId"),
        description: f.string("description"),
        sorting_number: f.f64("sortingNumber"),
    };
    f.finish();
    m
}

/// The typed message the JSON describes, for the given payload type. `payloadType` (field 1 of
/// every inner message) is never listed: the SDK leaves it unset.
fn expected_payload(payload_type: u32, f: Fields<'_>) -> Payload {
    let payload: Payload = match payload_type {
        51 => ProtoHeartbeatEvent { payload_type: None }.into(),
        2100 => ProtoOaApplicationAuthReq {
            payload_type: None,
            client_id: f.req("clientId", f.string("clientId")),
            client_secret: f.req("clientSecret", f.string("clientSecret")),
        }
        .into(),
        2101 => ProtoOaApplicationAuthRes { payload_type: None }.into(),
        2102 => ProtoOaAccountAuthReq {
            payload_type: None,
            ctid_trader_account_id: f.req("ctidTraderAccountId", f.i64("ctidTraderAccountId")),
            access_token: f.req("accessToken", f.string("accessToken")),
        }
        .into(),
        2115 => ProtoOaSymbolsListRes {
            payload_type: None,
            ctid_trader_account_id: f.req("ctidTraderAccountId", f.i64("ctidTraderAccountId")),
            symbol: f
                .list("symbol")
                .into_iter()
                .map(|v| light_symbol(Fields::new("symbol[]", v)))
                .collect(),
            archived_symbol: {
                assert!(
                    f.list("archivedSymbol").is_empty(),
                    "no archived symbols in golden data"
                );
                Vec::new()
            },
        }
        .into(),
        2127 => ProtoOaSubscribeSpotsReq {
            payload_type: None,
            ctid_trader_account_id: f.req("ctidTraderAccountId", f.i64("ctidTraderAccountId")),
            symbol_id: f
                .list("symbolId")
                .into_iter()
                .map(|v| v.as_str().expect("int64 as string").parse().unwrap())
                .collect(),
            subscribe_to_spot_timestamp: f.bool("subscribeToSpotTimestamp"),
        }
        .into(),
        2131 => ProtoOaSpotEvent {
            payload_type: None,
            ctid_trader_account_id: f.req("ctidTraderAccountId", f.i64("ctidTraderAccountId")),
            symbol_id: f.req("symbolId", f.i64("symbolId")),
            bid: f.u64("bid"),
            ask: f.u64("ask"),
            trendbar: {
                assert!(
                    f.list("trendbar").is_empty(),
                    "no trendbars in golden spot events"
                );
                Vec::new()
            },
            session_close: f.u64("sessionClose"),
            timestamp: f.i64("timestamp"),
        }
        .into(),
        2106 => ProtoOaNewOrderReq {
            payload_type: None,
            ctid_trader_account_id: f.req("ctidTraderAccountId", f.i64("ctidTraderAccountId")),
            symbol_id: f.req("symbolId", f.i64("symbolId")),
            order_type: f.req("orderType", f.i32("orderType")),
            trade_side: f.req("tradeSide", f.i32("tradeSide")),
            volume: f.req("volume", f.i64("volume")),
            limit_price: f.f64("limitPrice"),
            stop_price: f.f64("stopPrice"),
            time_in_force: f.i32("timeInForce"),
            expiration_timestamp: f.i64("expirationTimestamp"),
            stop_loss: f.f64("stopLoss"),
            take_profit: f.f64("takeProfit"),
            comment: f.string("comment"),
            base_slippage_price: f.f64("baseSlippagePrice"),
            slippage_in_points: f.i32("slippageInPoints"),
            label: f.string("label"),
            position_id: f.i64("positionId"),
            client_order_id: f.string("clientOrderId"),
            relative_stop_loss: f.i64("relativeStopLoss"),
            relative_take_profit: f.i64("relativeTakeProfit"),
            guaranteed_stop_loss: f.bool("guaranteedStopLoss"),
            trailing_stop_loss: f.bool("trailingStopLoss"),
            stop_trigger_method: f.i32("stopTriggerMethod"),
        }
        .into(),
        2126 => ProtoOaExecutionEvent {
            payload_type: None,
            ctid_trader_account_id: f.req("ctidTraderAccountId", f.i64("ctidTraderAccountId")),
            execution_type: f.req("executionType", f.i32("executionType")),
            position: f.object("position").map(position),
            order: f.object("order").map(order),
            deal: f.object("deal").map(deal),
            bonus_deposit_withdraw: {
                assert!(f.get("bonusDepositWithdraw").is_none());
                None
            },
            deposit_withdraw: {
                assert!(f.get("depositWithdraw").is_none());
                None
            },
            error_code: f.string("errorCode"),
            is_server_event: f.bool("isServerEvent"),
        }
        .into(),
        2132 => ProtoOaOrderErrorEvent {
            payload_type: None,
            ctid_trader_account_id: f.req("ctidTraderAccountId", f.i64("ctidTraderAccountId")),
            error_code: f.req("errorCode", f.string("errorCode")),
            order_id: f.i64("orderId"),
            position_id: f.i64("positionId"),
            description: f.string("description"),
        }
        .into(),
        other => panic!("golden frame of payload type {other} has no expectation written"),
    };
    f.finish();
    payload
}

struct Golden {
    name: String,
    envelope: Envelope,
    frame: Vec<u8>,
}

fn golden_frames() -> Vec<Golden> {
    let all: Value = serde_json::from_str(GOLDEN).unwrap();
    all.as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            let f = Fields::new("frame", entry);
            let name = f.req("name", f.string("name"));
            let payload_type = f.req("payloadType", f.u32("payloadType"));
            let client_msg_id = f.string("clientMsgId");
            let message = f.req("message", f.object("message"));
            let frame = hex::decode(f.req("frame_hex", f.string("frame_hex"))).unwrap();
            f.finish();
            let payload = expected_payload(payload_type, message);
            assert_eq!(payload.payload_type(), payload_type, "{name}");
            Golden {
                name,
                envelope: Envelope {
                    client_msg_id,
                    payload,
                },
                frame,
            }
        })
        .collect()
}

#[test]
fn golden_frames_cover_the_bot_flow() {
    let names: Vec<String> = golden_frames().into_iter().map(|g| g.name).collect();
    assert_eq!(names.len(), 11, "{names:?}");
}

#[test]
fn every_golden_frame_decodes_to_the_listed_values() {
    for golden in golden_frames() {
        let mut buf = BytesMut::from(&golden.frame[..]);
        let decoded = EnvelopeCodec::new().decode(&mut buf).unwrap();
        assert_eq!(decoded.as_ref(), Some(&golden.envelope), "{}", golden.name);
        assert!(
            buf.is_empty(),
            "{}: the whole frame is consumed",
            golden.name
        );
        assert!(
            !matches!(golden.envelope.payload, Payload::Unknown { .. }),
            "{}: decoded as a typed message",
            golden.name
        );
    }
}

#[test]
fn encoding_the_listed_values_gives_the_same_bytes() {
    for golden in golden_frames() {
        let mut by_value = BytesMut::new();
        EnvelopeCodec::new()
            .encode(golden.envelope.clone(), &mut by_value)
            .unwrap();
        assert_eq!(
            hex::encode(&by_value),
            hex::encode(&golden.frame),
            "{}",
            golden.name
        );

        let mut by_ref = BytesMut::new();
        EnvelopeCodec::new()
            .encode(&golden.envelope, &mut by_ref)
            .unwrap();
        assert_eq!(by_ref, by_value, "{}", golden.name);

        let mut raw = BytesMut::new();
        FrameCodec::new()
            .encode(golden.envelope.to_proto(), &mut raw)
            .unwrap();
        assert_eq!(raw, by_value, "{}", golden.name);
    }
}

#[test]
fn all_golden_frames_in_one_read_decode_in_order() {
    let frames = golden_frames();
    let mut buf = BytesMut::new();
    for golden in &frames {
        buf.extend_from_slice(&golden.frame);
    }
    let mut codec = EnvelopeCodec::new();
    for golden in &frames {
        assert_eq!(
            codec.decode(&mut buf).unwrap().as_ref(),
            Some(&golden.envelope)
        );
    }
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
    assert!(buf.is_empty());
}
