//! What KODE POSTs to the callback URL: order pushes and distributor messages,
//! told apart by shape.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::open_enum::open_enum;
use super::{KodeDate, OrderId};

open_enum! {
    /// The `status` of an order push.
    pub enum PushStatus {
        /// Order received (works like an order confirmation).
        New => "NEW",
        /// A new file arrived. The integration guide spells it `UPDATE`.
        Updated => "UPDATED" | "UPDATE",
        /// Order finished; files may still arrive later.
        Finished => "FINISHED",
        /// Cancelled: every file of the order must go.
        Cancelled => "CANCELLED" | "CANCELED",
        /// Refunded: every file of the order must go.
        Refunded => "REFUNDED",
    }
}

impl PushStatus {
    /// Cancelled and refunded orders lose their files.
    pub fn purges_files(&self) -> bool {
        matches!(self, PushStatus::Cancelled | PushStatus::Refunded)
    }
}

/// An order push. `orderId` is the first edition's name for `orderCollectionId`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderPush {
    #[serde(rename = "orderCollectionId")]
    pub order_id: OrderId,
    pub status: PushStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub technical_reference: Option<String>,
}

open_enum! {
    /// Who a distributor message is meant for.
    pub enum DistributorMessageType {
        /// For the people using the integrator's application.
        Customer => "CUSTOMER",
        /// For the integrator's support staff.
        Distributor => "DISTRIBUTOR",
    }
}

/// A distributor message push, flattened from either published nesting
/// (`content.body.{...}` or `content.{...}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DistributorMessage {
    pub id: String,
    pub event_action: String,
    #[serde(rename = "type")]
    pub message_type: DistributorMessageType,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub municipality_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub municipality_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date_created: Option<KodeDate>,
}

/// The two kinds of push, as named in the queue envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PushKind {
    Order,
    Distributor,
}

/// A validated push.
#[derive(Debug, Clone, PartialEq)]
pub enum Push {
    Order(OrderPush),
    Distributor(DistributorMessage),
}

/// Why a body is not a push. The text is what the webhook returns as
/// `{"error": ...}`, so it names the problem precisely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    #[error("body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("body must be a JSON object, got {0}")]
    NotAnObject(&'static str),
    #[error("order push has no orderCollectionId (or orderId)")]
    MissingOrderId,
    #[error("{field} must be a whole number or a string of digits, got {got}")]
    InvalidOrderId { field: &'static str, got: String },
    #[error("order push has no status")]
    MissingStatus,
    #[error("status must be a string, got {0}")]
    InvalidStatus(String),
    #[error("distributor message is missing {0}")]
    InvalidDistributorMessage(&'static str),
    #[error(
        "unknown push shape: expected an order push (orderCollectionId and status) \
         or a distributor message (eventType \"DistributorMessages\")"
    )]
    UnknownShape,
}

impl Push {
    /// Parses and validates a push body.
    pub fn from_slice(body: &[u8]) -> Result<Push, PushError> {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| PushError::InvalidJson(e.to_string()))?;
        Push::from_value(&value)
    }

    pub fn from_value(value: &Value) -> Result<Push, PushError> {
        let object = value
            .as_object()
            .ok_or_else(|| PushError::NotAnObject(json_type(value)))?;
        if object.contains_key("eventType") {
            return parse_distributor(object).map(Push::Distributor);
        }
        if object.contains_key("orderCollectionId") || object.contains_key("orderId") {
            return parse_order(object).map(Push::Order);
        }
        if object.contains_key("status") {
            return Err(PushError::MissingOrderId);
        }
        Err(PushError::UnknownShape)
    }

    pub fn kind(&self) -> PushKind {
        match self {
            Push::Order(_) => PushKind::Order,
            Push::Distributor(_) => PushKind::Distributor,
        }
    }

    /// The FIFO message group: pushes of one order are processed in order.
    pub fn message_group(&self) -> String {
        match self {
            Push::Order(p) => format!("order-{}", p.order_id),
            Push::Distributor(_) => "distributor-messages".to_owned(),
        }
    }
}

fn parse_order(object: &Map<String, Value>) -> Result<OrderPush, PushError> {
    let (field, raw) = match object.get("orderCollectionId") {
        Some(v) if !v.is_null() => ("orderCollectionId", v),
        _ => match object.get("orderId") {
            Some(v) if !v.is_null() => ("orderId", v),
            _ => return Err(PushError::MissingOrderId),
        },
    };
    let order_id = OrderId::deserialize(raw).map_err(|_| PushError::InvalidOrderId {
        field,
        got: truncate(&raw.to_string(), 40),
    })?;
    let status = match object.get("status") {
        None | Some(Value::Null) => return Err(PushError::MissingStatus),
        Some(Value::String(s)) if s.trim().is_empty() => return Err(PushError::MissingStatus),
        Some(Value::String(s)) => PushStatus::parse(s),
        Some(other) => return Err(PushError::InvalidStatus(json_type(other).to_owned())),
    };
    Ok(OrderPush {
        order_id,
        status,
        reference: string_field(object, "reference"),
        technical_reference: string_field(object, "technicalReference"),
    })
}

fn parse_distributor(object: &Map<String, Value>) -> Result<DistributorMessage, PushError> {
    match object.get("eventType").and_then(Value::as_str) {
        Some(t) if t.eq_ignore_ascii_case("DistributorMessages") => {}
        _ => return Err(PushError::UnknownShape),
    }
    let content = object
        .get("content")
        .and_then(Value::as_object)
        .ok_or(PushError::InvalidDistributorMessage("content"))?;
    // Sender-side pages nest the fields one level deeper in `content.body`.
    let body = content
        .get("body")
        .and_then(Value::as_object)
        .unwrap_or(content);
    let lookup = |key: &str| string_field(body, key).or_else(|| string_field(content, key));
    let id = lookup("id").ok_or(PushError::InvalidDistributorMessage("content.id"))?;
    let message =
        lookup("message").ok_or(PushError::InvalidDistributorMessage("content.message"))?;
    Ok(DistributorMessage {
        id,
        event_action: string_field(object, "eventAction").unwrap_or_else(|| "Created".to_owned()),
        message_type: lookup("type")
            .map(|t| DistributorMessageType::parse(&t))
            .unwrap_or(DistributorMessageType::Unknown(String::new())),
        message,
        municipality_name: lookup("municipalityName"),
        municipality_number: lookup("municipalityNumber"),
        organization_code: lookup("organizationCode"),
        date_created: lookup("dateCreated").map(|d| KodeDate::parse(&d)),
    })
}

/// A string field; numbers are accepted as their text (ids, municipality numbers).
fn string_field(object: &Map<String, Value>, key: &str) -> Option<String> {
    match object.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn truncate(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}
