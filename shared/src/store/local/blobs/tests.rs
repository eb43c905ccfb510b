//! `DiskBlobs`: atomic installs, hostile keys, clean-up after a failed put.

use super::*;
use crate::model::{AssetId, OrderId, SubOrderId};
use crate::stream::SourceError;
use bytes::Bytes;

struct Chunks {
    chunks: Vec<Bytes>,
    fail_after: Option<usize>,
    sent: usize,
}

impl Chunks {
    fn ok(chunks: &[&[u8]]) -> Self {
        Self {
            chunks: chunks.iter().map(|c| Bytes::copy_from_slice(c)).collect(),
            fail_after: None,
            sent: 0,
        }
    }

    fn failing_after(chunks: &[&[u8]], n: usize) -> Self {
        Self {
            fail_after: Some(n),
            ..Self::ok(chunks)
        }
    }
}

#[async_trait]
impl ChunkSource for Chunks {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, SourceError> {
        if self.fail_after == Some(self.sent) {
            return Err(SourceError::Truncated {
                received: 0,
                expected: Some(100),
            });
        }
        let chunk = self.chunks.get(self.sent).cloned();
        self.sent += 1;
        Ok(chunk)
    }
}

fn meta() -> ObjectMeta {
    ObjectMeta {
        order_id: OrderId(1),
        sub_order_id: SubOrderId(2),
        order_line_id: None,
        asset_id: AssetId::from("a1"),
        product_category: None,
        original_name: "Situasjonskart.pdf".into(),
        content_type: None,
    }
}

fn key(s: &str) -> ObjectKey {
    ObjectKey(s.to_owned())
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test]
async fn put_writes_the_bytes_exactly_and_reports_their_sha256() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = DiskBlobs::new(dir.path());
    let k = key("orders/1/a1/Situasjonskart – Bærum.pdf");
    let mut src = Chunks::ok(&[b"hello ", b"", b"world"]);

    let stored = blobs.put(&k, &meta(), &mut src).await.unwrap();

    let on_disk = std::fs::read(dir.path().join("assets").join(k.as_str())).unwrap();
    assert_eq!(on_disk, b"hello world");
    assert_eq!(stored.bytes, 11);
    assert_eq!(
        stored.sha256,
        "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
    );
    assert!(dir.path().join("assets").join(k.as_str()).is_file());
    assert!(files_under(&dir.path().join("tmp")).is_empty());
}

#[tokio::test]
async fn a_source_failing_midway_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = DiskBlobs::new(dir.path());
    let k = key("orders/1/a1/big.pdf");
    let mut src = Chunks::failing_after(&[b"part one", b"part two", b"part three"], 2);

    let err = blobs.put(&k, &meta(), &mut src).await.unwrap_err();

    assert!(matches!(
        err,
        PutError::Source(SourceError::Truncated { .. })
    ));
    assert!(files_under(&dir.path().join("assets")).is_empty());
    assert!(files_under(&dir.path().join("tmp")).is_empty());
    assert!(!dir.path().join("assets").join(k.as_str()).exists());
}

#[tokio::test]
async fn a_failed_rewrite_keeps_the_previous_complete_file() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = DiskBlobs::new(dir.path());
    let k = key("orders/1/a1/doc.pdf");
    blobs
        .put(&k, &meta(), &mut Chunks::ok(&[b"complete"]))
        .await
        .unwrap();

    let mut broken = Chunks::failing_after(&[b"half"], 1);
    blobs.put(&k, &meta(), &mut broken).await.unwrap_err();

    assert_eq!(
        std::fs::read(blobs.path_of(&k).unwrap()).unwrap(),
        b"complete"
    );
}

#[tokio::test]
async fn hostile_keys_are_rejected_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let blobs = DiskBlobs::new(&data);
    for hostile in [
        "../escape.txt",
        "orders/1/../../../escape.txt",
        "/etc/passwd",
        "orders//x",
        "orders/./x",
        "",
        "orders/1/a\\..\\x",
    ] {
        let mut src = Chunks::ok(&[b"evil"]);
        let err = blobs
            .put(&key(hostile), &meta(), &mut src)
            .await
            .unwrap_err();
        assert!(
            matches!(err, PutError::Store(StoreError::Permanent(_))),
            "{hostile:?} gave {err:?}"
        );
        assert!(blobs.delete(&key(hostile)).await.is_err(), "{hostile:?}");
    }
    assert!(files_under(dir.path()).is_empty());
}

#[tokio::test]
async fn delete_removes_the_file_and_its_empty_directories_only() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = DiskBlobs::new(dir.path());
    let a = key("orders/1/a1/a.pdf");
    let b = key("orders/1/b2/b.pdf");
    for k in [&a, &b] {
        blobs
            .put(k, &meta(), &mut Chunks::ok(&[b"x"]))
            .await
            .unwrap();
    }

    blobs.delete(&a).await.unwrap();
    assert!(!dir.path().join("assets").join(a.as_str()).exists());
    assert!(!dir.path().join("assets/orders/1/a1").exists());
    assert!(dir.path().join("assets").join(b.as_str()).is_file());

    blobs.delete(&b).await.unwrap();
    assert!(!dir.path().join("assets/orders").exists());
    assert!(dir.path().join("assets").is_dir());

    // Deleting what is not there is fine.
    blobs.delete(&b).await.unwrap();
}
