//! What S3 keeps beside an object, in a form its HTTP headers can carry.
//!
//! User metadata travels as `x-amz-meta-*` headers, which only hold ASCII.
//! Every value is therefore percent-encoded as UTF-8 (RFC 3986: letters,
//! digits and `-._~` stay as they are, every other byte becomes `%XX`), so
//! `Målebrev 1.pdf` is stored as `M%C3%A5lebrev%201.pdf` and any URL decoder
//! gives the original back. Ids are plain ASCII and come through unchanged.

use std::collections::HashMap;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::model::ObjectMeta;

/// S3 allows 2 KiB of user metadata in total; a pathological name is cut
/// (on a character boundary) rather than making the upload fail forever.
const MAX_ENCODED_NAME: usize = 1024;

/// The `x-amz-meta-*` entries of an object; `sha256` only when it is known
/// before the upload begins (single-request uploads).
pub(super) fn user_metadata(meta: &ObjectMeta, sha256: Option<&str>) -> HashMap<String, String> {
    let mut entries = HashMap::new();
    entries.insert("order-id".to_owned(), meta.order_id.to_string());
    entries.insert("sub-order-id".to_owned(), meta.sub_order_id.to_string());
    if let Some(line) = meta.order_line_id {
        entries.insert("order-line-id".to_owned(), line.to_string());
    }
    entries.insert(
        "asset-id".to_owned(),
        encode(meta.asset_id.as_str(), MAX_ENCODED_NAME),
    );
    if let Some(category) = &meta.product_category {
        entries.insert(
            "product-category".to_owned(),
            encode(category, MAX_ENCODED_NAME),
        );
    }
    entries.insert(
        "original-name".to_owned(),
        encode(&meta.original_name, MAX_ENCODED_NAME),
    );
    if let Some(sha256) = sha256 {
        entries.insert("sha256".to_owned(), sha256.to_owned());
    }
    entries
}

/// The content type to store: the asset's own, else the one announced by the
/// download. Dropped (S3 then says `application/octet-stream`) when it could
/// not travel in a header, rather than failing the upload over a label.
pub(super) fn content_type(meta: &ObjectMeta, announced: Option<&str>) -> Option<String> {
    meta.content_type
        .as_deref()
        .or(announced)
        .map(str::trim)
        .filter(|value| {
            !value.is_empty()
                && value.len() <= 255
                && value.contains('/')
                && value.bytes().all(|b| (0x20..0x7f).contains(&b))
        })
        .map(str::to_owned)
}

/// RFC 3986's unreserved characters stay; every other byte is escaped.
const ESCAPED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes `value`, stopping before the character that would make the
/// result longer than `max` bytes.
fn encode(value: &str, max: usize) -> String {
    let mut encoded = String::with_capacity(value.len().min(max));
    let mut utf8 = [0u8; 4];
    for ch in value.chars() {
        let piece = utf8_percent_encode(ch.encode_utf8(&mut utf8), ESCAPED).to_string();
        if encoded.len() + piece.len() > max {
            break;
        }
        encoded.push_str(&piece);
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AssetId, OrderId, OrderLineId, SubOrderId};

    fn meta() -> ObjectMeta {
        ObjectMeta {
            order_id: OrderId(1001),
            sub_order_id: SubOrderId(2002),
            order_line_id: Some(OrderLineId(3003)),
            asset_id: AssetId("4e7d1c2b".into()),
            product_category: Some("Målebrev".into()),
            original_name: "Målebrev for Ærøgata 1/2 (ØST).pdf".into(),
            content_type: Some("application/pdf".into()),
        }
    }

    #[test]
    fn norwegian_names_are_percent_encoded_utf8() {
        let entries = user_metadata(&meta(), Some("ab12"));
        assert_eq!(
            entries["original-name"],
            "M%C3%A5lebrev%20for%20%C3%86r%C3%B8gata%201%2F2%20%28%C3%98ST%29.pdf"
        );
        assert_eq!(entries["product-category"], "M%C3%A5lebrev");
        assert_eq!(entries["order-id"], "1001");
        assert_eq!(entries["sub-order-id"], "2002");
        assert_eq!(entries["order-line-id"], "3003");
        assert_eq!(entries["asset-id"], "4e7d1c2b");
        assert_eq!(entries["sha256"], "ab12");
        assert!(entries.values().all(|v| v.is_ascii()));
    }

    #[test]
    fn absent_fields_are_left_out() {
        let mut m = meta();
        m.order_line_id = None;
        m.product_category = None;
        let entries = user_metadata(&m, None);
        assert!(!entries.contains_key("order-line-id"));
        assert!(!entries.contains_key("product-category"));
        assert!(!entries.contains_key("sha256"));
    }

    #[test]
    fn a_huge_name_is_cut_without_splitting_an_escape() {
        let mut m = meta();
        m.original_name = "ø".repeat(1000);
        let name = &user_metadata(&m, None)["original-name"];
        assert!(name.len() <= MAX_ENCODED_NAME);
        assert_eq!(name.len() % 6, 0, "whole characters only: {name}");
    }

    #[test]
    fn content_type_that_cannot_be_a_header_is_dropped() {
        let mut m = meta();
        assert_eq!(
            content_type(&m, Some("text/plain")).as_deref(),
            Some("application/pdf")
        );
        m.content_type = None;
        assert_eq!(
            content_type(&m, Some("text/plain")).as_deref(),
            Some("text/plain")
        );
        assert_eq!(content_type(&m, Some("tekst/æøå")), None);
        assert_eq!(content_type(&m, Some("pdf\r\nx-evil: 1")), None);
        assert_eq!(content_type(&m, None), None);
    }
}
