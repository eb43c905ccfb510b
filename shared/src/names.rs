//! Safe names for stored files: whatever KODE sends as a file name or asset
//! id, the object key stays under `orders/{orderId}/{assetId}/` and is a
//! valid file name on disk.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};
use unicode_normalization::UnicodeNormalization;

use crate::model::{AssetId, ObjectKey, OrderId};

/// Longest file name kept, in bytes (common file systems allow 255).
pub const MAX_NAME_BYTES: usize = 200;

/// Longest suffix still treated as an extension worth keeping when cutting.
const MAX_EXTENSION_BYTES: usize = 16;

/// Longest asset-id segment kept as it is (KODE's ids are 32 characters).
const MAX_ID_SEGMENT_BYTES: usize = 128;
/// How much of a longer segment is kept before its digest. Escapes are
/// ASCII, so any byte offset is a character boundary.
const ID_SEGMENT_PREFIX_BYTES: usize = 64;

/// What an asset id keeps unescaped in its key segment: letters, digits,
/// `-`, `_` and (not leading) `.`. `~` is always escaped: it marks a
/// shortened segment.
const ID_SEGMENT_ESCAPED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

/// Name used when nothing of the original survives cleaning.
const FALLBACK_STEM: &str = "asset";

/// The key `orders/{orderId}/{assetId}/{safe file name}`.
pub fn object_key(order: OrderId, asset_id: &AssetId, file_name: &str) -> ObjectKey {
    ObjectKey(format!(
        "orders/{order}/{}/{}",
        key_segment(asset_id.as_str()),
        safe_file_name(file_name)
    ))
}

/// Makes a file name safe (see "Details decided" in `docs/DESIGN.md`):
/// NFC; control and format characters (bidi overrides included) removed;
/// `/` and `\` replaced by `_`; leading dots and spaces stripped; at most
/// [`MAX_NAME_BYTES`] bytes, cut on a character boundary with the extension
/// kept; `asset` (plus the extension) when nothing else is left.
pub fn safe_file_name(raw: &str) -> String {
    let cleaned: String = raw
        .nfc()
        .filter(|c| !is_invisible(*c))
        .map(|c| if c == '/' || c == '\\' { '_' } else { c })
        .collect();
    let cleaned = cleaned.trim_end();
    let (stem, extension) = split_extension(cleaned);
    let stem = stem.trim_start_matches(|c: char| c == '.' || c.is_whitespace());
    let stem = if stem.is_empty() { FALLBACK_STEM } else { stem };
    match extension {
        Some(ext) => {
            let room = MAX_NAME_BYTES - ext.len() - 1;
            format!("{}.{ext}", cut_to(stem, room))
        }
        None => cut_to(stem, MAX_NAME_BYTES).to_owned(),
    }
}

/// An asset id as one key segment. Ids are opaque strings from KODE (hex in
/// practice, which passes unchanged); anything else is percent-escaped so the
/// segment can be neither a path separator nor `.`/`..`, and two different
/// ids never share a segment.
fn key_segment(id: &str) -> String {
    if id.is_empty() {
        // `%` alone is never produced for a non-empty id (a literal `%` is
        // escaped), so it cannot collide.
        return "%".to_owned();
    }
    // A leading `.` is escaped so that no segment is `.` or `..`.
    let (lead, rest) = match id.strip_prefix('.') {
        Some(rest) => ("%2E", rest),
        None => ("", id),
    };
    let mut out = format!("{lead}{}", utf8_percent_encode(rest, ID_SEGMENT_ESCAPED));
    if out.len() > MAX_ID_SEGMENT_BYTES {
        // Keeps keys within S3's 1024 bytes and a disk's 255-byte file names
        // however long a (hostile) id is. `~` is always escaped above, so a
        // shortened segment can never equal a plain one, and the digest of
        // the whole id keeps two long ids apart.
        let digest = hex::encode(Sha256::digest(id.as_bytes()));
        out.truncate(ID_SEGMENT_PREFIX_BYTES);
        out.push('~');
        out.push_str(&digest[..32]);
    }
    out
}

/// `("report", Some("pdf"))` for `report.pdf`. Only a short alphanumeric
/// suffix counts, so that cutting a long name never "keeps" most of it as
/// an extension.
fn split_extension(name: &str) -> (&str, Option<&str>) {
    match name.rsplit_once('.') {
        Some((stem, ext))
            if !ext.is_empty()
                && ext.len() <= MAX_EXTENSION_BYTES
                && ext.chars().all(char::is_alphanumeric) =>
        {
            (stem, Some(ext))
        }
        _ => (name, None),
    }
}

fn cut_to(s: &str, max_bytes: usize) -> &str {
    if s.len() <= max_bytes {
        return s;
    }
    let mut end = max_bytes;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Control characters (Cc), format characters (Cf, which hold the bidi
/// overrides that make `exe.pdf` display as `fdp.exe`) and the line and
/// paragraph separators.
fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{0600}'..='\u{0605}'
                | '\u{061C}'
                | '\u{06DD}'
                | '\u{070F}'
                | '\u{0890}'..='\u{0891}'
                | '\u{08E2}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{110BD}'
                | '\u{110CD}'
                | '\u{13430}'..='\u{1343F}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0001}'
                | '\u{E0020}'..='\u{E007F}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(asset: &str, name: &str) -> String {
        object_key(OrderId(42), &AssetId::from(asset), name).0
    }

    #[test]
    fn plain_names_pass_unchanged() {
        assert_eq!(safe_file_name("Situasjonskart.pdf"), "Situasjonskart.pdf");
        assert_eq!(
            key("4e7d1c2b", "Situasjonskart.pdf"),
            "orders/42/4e7d1c2b/Situasjonskart.pdf"
        );
    }

    #[test]
    fn norwegian_letters_are_kept_and_composed() {
        assert_eq!(
            safe_file_name("Bjørnøya Ærlig Å.pdf"),
            "Bjørnøya Ærlig Å.pdf"
        );
        // "A" + combining ring above becomes the single letter Å.
        assert_eq!(safe_file_name("A\u{030A}sen.pdf"), "\u{00C5}sen.pdf");
    }

    #[test]
    fn path_traversal_cannot_leave_the_asset_folder() {
        let name = safe_file_name("../../etc/passwd");
        assert_eq!(name, "_.._etc_passwd");
        assert_eq!(key("a1", "../../etc/passwd"), "orders/42/a1/_.._etc_passwd");
        assert_eq!(safe_file_name("a/b\\c.pdf"), "a_b_c.pdf");
    }

    #[test]
    fn control_and_bidi_characters_are_removed() {
        assert_eq!(safe_file_name("in\u{0}voice\r\n\t.pdf"), "invoice.pdf");
        // Would display as "reportfdp.exe".
        assert_eq!(safe_file_name("report\u{202E}exe.pdf"), "reportexe.pdf");
        assert_eq!(
            safe_file_name("\u{FEFF}zero\u{200B}width.pdf"),
            "zerowidth.pdf"
        );
    }

    #[test]
    fn leading_dots_and_spaces_are_stripped() {
        assert_eq!(safe_file_name("  ..notes.txt"), "notes.txt");
        assert_eq!(safe_file_name(".hidden"), "asset.hidden");
        assert_eq!(safe_file_name(" .pdf"), "asset.pdf");
    }

    #[test]
    fn names_that_clean_to_nothing_become_asset() {
        assert_eq!(safe_file_name(""), "asset");
        assert_eq!(safe_file_name("..."), "asset");
        assert_eq!(safe_file_name("\u{202E}\u{0007}"), "asset");
        assert_eq!(safe_file_name(".\u{202E}.pdf"), "asset.pdf");
    }

    #[test]
    fn long_names_are_cut_on_a_char_boundary_keeping_the_extension() {
        // 301 bytes of stem; the cut falls inside a two-byte ø.
        let long = format!("x{}.pdf", "ø".repeat(150));
        let safe = safe_file_name(&long);
        assert!(safe.len() <= MAX_NAME_BYTES, "{} bytes", safe.len());
        assert!(safe.ends_with(".pdf"));
        // 196 bytes of room for the stem: "x" and 97 whole ø.
        assert_eq!(safe, format!("x{}.pdf", "ø".repeat(97)));

        let no_ext = "x".repeat(300);
        assert_eq!(safe_file_name(&no_ext).len(), MAX_NAME_BYTES);
    }

    #[test]
    fn a_long_suffix_is_not_an_extension() {
        let name = format!("a.{}", "b".repeat(300));
        let safe = safe_file_name(&name);
        assert_eq!(safe.len(), MAX_NAME_BYTES);
        assert!(safe.starts_with("a.b"));
    }

    #[test]
    fn hostile_asset_ids_stay_one_segment() {
        assert_eq!(key("..", "f.pdf"), "orders/42/%2E./f.pdf");
        assert_eq!(key(".", "f.pdf"), "orders/42/%2E/f.pdf");
        assert_eq!(key("a/../b", "f.pdf"), "orders/42/a%2F..%2Fb/f.pdf");
        assert_eq!(key("", "f.pdf"), "orders/42/%/f.pdf");
        // Escaping keeps ids apart.
        assert_ne!(key("a/b", "f"), key("a%2Fb", "f"));
        for id in ["..", "a/../b", "x\\y", "a b", "é"] {
            let k = key(id, "f.pdf");
            let segment = k.split('/').nth(2).unwrap_or_default();
            assert_eq!(k.split('/').count(), 4, "{k}");
            assert!(!segment.starts_with('.'), "{k}");
        }
    }

    #[test]
    fn a_very_long_asset_id_gives_a_bounded_distinct_segment() {
        let long_a = AssetId(format!("{}a", "../".repeat(400)));
        let long_b = AssetId(format!("{}b", "../".repeat(400)));
        let key_a = object_key(OrderId(7), &long_a, "f.pdf");
        let key_b = object_key(OrderId(7), &long_b, "f.pdf");
        assert_ne!(key_a, key_b);
        for key in [&key_a, &key_b] {
            let segments: Vec<&str> = key.as_str().split('/').collect();
            assert_eq!(segments.len(), 4, "{key}");
            assert!(segments[2].len() <= 128, "{key}");
            assert!(!segments[2].starts_with('.'), "{key}");
            assert!(key.as_str().len() < 1024);
        }
        // A normal KODE id is untouched.
        let plain = AssetId("4e7d1c2b9a8f4e3d2c1b0a9f8e7d6c5b".into());
        assert_eq!(
            object_key(OrderId(7), &plain, "f.pdf").as_str(),
            "orders/7/4e7d1c2b9a8f4e3d2c1b0a9f8e7d6c5b/f.pdf"
        );
    }
}
