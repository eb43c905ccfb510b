//! The bytes that uploads may hold in memory, shared by every upload of a
//! process: an upload waits for budget rather than exceed it.
//!
//! Two pools, so that waiting can never go round in a circle. Every upload
//! starts with a small reservation from the `starts` pool (a small file
//! never needs more), taken while holding nothing. Only a body that
//! outgrows it asks the `parts` pool for whole parts, while still holding
//! its start; a reserved part is always uploaded and given back without
//! needing anything else, so whoever waits for `parts` is eventually
//! served. Were both one pool, uploads that each held a half-filled first
//! part could wait for one another forever.
//!
//! Part buffers are reused: a part whose upload is done gives its buffer
//! back for the next one, so the memory allocated for parts stays within
//! the parts pool whatever the allocator keeps of freed blocks, and a
//! large file costs no page faults past its first parts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use tokio::sync::Semaphore;

use crate::store::StoreError;

/// A process-wide memory budget for upload buffers. Cheap to clone; clones
/// share the budget.
#[derive(Debug, Clone)]
pub struct UploadBudget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    starts: Pool,
    parts: Pool,
    /// Bytes reserved right now, over both pools.
    held: AtomicU64,
    /// The most ever reserved at once.
    peak: AtomicU64,
    /// Part buffers whose upload is done, ready for the next part.
    spare_parts: Mutex<Vec<BytesMut>>,
    /// Bytes ever allocated for part buffers (reused ones count once).
    part_bytes_allocated: AtomicU64,
}

#[derive(Debug)]
struct Pool {
    semaphore: Semaphore,
    capacity: u64,
}

/// Which pool a reservation comes from.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    Start,
    Part,
}

impl UploadBudget {
    /// `total` bytes for all uploads together; a quarter of it is kept for
    /// the start of each upload (`start_bytes` each), the rest for parts.
    pub fn new(total: u64) -> Self {
        let starts = total / 4;
        UploadBudget {
            inner: Arc::new(Inner {
                starts: Pool::new(starts),
                parts: Pool::new(total - starts),
                held: AtomicU64::new(0),
                peak: AtomicU64::new(0),
                spare_parts: Mutex::new(Vec::new()),
                part_bytes_allocated: AtomicU64::new(0),
            }),
        }
    }

    /// The whole budget, in bytes.
    pub fn total(&self) -> u64 {
        self.inner.starts.capacity + self.inner.parts.capacity
    }

    /// The most bytes ever reserved at once.
    pub fn peak(&self) -> u64 {
        self.inner.peak.load(Ordering::Relaxed)
    }

    /// Starts a new high-water mark from what is held now (benchmarks
    /// measure one case at a time).
    pub fn reset_peak(&self) {
        self.inner.peak.store(self.held(), Ordering::Relaxed);
    }

    /// Bytes reserved right now.
    pub fn held(&self) -> u64 {
        self.inner.held.load(Ordering::Relaxed)
    }

    /// Bytes allocated for part buffers so far. They are reused: for
    /// uploads of one part size this stays within the parts pool (three
    /// quarters of [`Self::total`]).
    pub fn part_bytes_allocated(&self) -> u64 {
        self.inner.part_bytes_allocated.load(Ordering::Relaxed)
    }

    /// Refuses a budget in which an upload could never get the reservations
    /// it needs (it would wait forever).
    pub(super) fn check_fits(
        &self,
        start_bytes: usize,
        part_size: usize,
    ) -> Result<(), StoreError> {
        if (start_bytes as u64) > self.inner.starts.capacity
            || (part_size as u64) > self.inner.parts.capacity
        {
            return Err(StoreError::Permanent(format!(
                "upload memory budget of {} bytes is too small: a quarter of it must hold \
                 {start_bytes} bytes and the rest one {part_size}-byte part",
                self.total()
            )));
        }
        Ok(())
    }

    /// Waits until `bytes` are free in the pool, then holds them until the
    /// returned reservation is dropped or shrunk.
    pub(super) async fn reserve(&self, kind: Kind, bytes: usize) -> Reservation {
        let pool = self.pool(kind);
        let permits = u32::try_from(bytes).expect("part sizes are checked to fit in u32");
        pool.semaphore
            .acquire_many(permits)
            .await
            .expect("the budget's semaphores are never closed")
            .forget();
        let held = self.inner.held.fetch_add(bytes as u64, Ordering::Relaxed) + bytes as u64;
        self.inner.peak.fetch_max(held, Ordering::Relaxed);
        Reservation {
            budget: self.clone(),
            kind,
            bytes,
            reused: false,
        }
    }

    fn spare_parts(&self) -> std::sync::MutexGuard<'_, Vec<BytesMut>> {
        // A panic while holding the lock cannot leave the list half changed.
        self.inner
            .spare_parts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn pool(&self, kind: Kind) -> &Pool {
        match kind {
            Kind::Start => &self.inner.starts,
            Kind::Part => &self.inner.parts,
        }
    }

    fn release(&self, kind: Kind, bytes: usize) {
        if bytes == 0 {
            return;
        }
        self.inner.held.fetch_sub(bytes as u64, Ordering::Relaxed);
        self.pool(kind).semaphore.add_permits(bytes);
    }
}

impl Pool {
    fn new(capacity: u64) -> Self {
        let permits = usize::try_from(capacity)
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        Pool {
            semaphore: Semaphore::new(permits),
            capacity: permits as u64,
        }
    }
}

/// Bytes held from an [`UploadBudget`]; given back on drop.
#[derive(Debug)]
pub(super) struct Reservation {
    budget: UploadBudget,
    kind: Kind,
    bytes: usize,
    /// Holds a reused buffer, whose memory is all in use.
    reused: bool,
}

impl Reservation {
    /// An empty buffer with room for the reserved bytes: for a part, one
    /// given back by an earlier part if there is one.
    pub(super) fn buffer(&mut self) -> BytesMut {
        if let Kind::Part = self.kind {
            let spare = self.budget.spare_parts().pop();
            if let Some(buffer) = spare.filter(|b| b.capacity() >= self.bytes) {
                self.reused = true;
                return buffer;
            }
            self.budget
                .inner
                .part_bytes_allocated
                .fetch_add(self.bytes as u64, Ordering::Relaxed);
        }
        BytesMut::with_capacity(self.bytes)
    }

    /// The bytes of `buffer`, which hold this reservation until their last
    /// copy is dropped (the HTTP client may drop its own a moment after the
    /// request is answered); a part's buffer is then kept for the next part.
    pub(super) fn hold(self, buffer: BytesMut) -> Bytes {
        Bytes::from_owner(HeldBytes {
            buffer,
            reservation: self,
        })
    }

    /// Keeps a part's buffer for the next part while spare buffers and the
    /// parts reserved by others fit the parts pool, so that what is
    /// allocated for parts never exceeds it.
    fn recycle(&self, mut buffer: BytesMut) {
        let Kind::Part = self.kind else { return };
        let parts = &self.budget.inner.parts;
        let reserved_by_others =
            parts.capacity - parts.semaphore.available_permits() as u64 - self.bytes as u64;
        let mut spare = self.budget.spare_parts();
        let spare_bytes: u64 = spare.iter().map(|b| b.capacity() as u64).sum();
        if spare_bytes + buffer.capacity() as u64 + reserved_by_others <= parts.capacity {
            buffer.clear();
            spare.push(buffer);
        }
    }

    /// Gives back all but `bytes` (a body that ended short of what was
    /// reserved for it), unless it holds a reused buffer: the pages a new
    /// buffer never filled take no memory, those of a reused one do.
    pub(super) fn shrink_to(&mut self, bytes: usize) {
        if bytes < self.bytes && !self.reused {
            self.budget.release(self.kind, self.bytes - bytes);
            self.bytes = bytes;
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.release(self.kind, self.bytes);
    }
}

/// The owner behind the [`Bytes`] of [`Reservation::hold`].
struct HeldBytes {
    buffer: BytesMut,
    reservation: Reservation,
}

impl AsRef<[u8]> for HeldBytes {
    fn as_ref(&self) -> &[u8] {
        &self.buffer
    }
}

impl Drop for HeldBytes {
    fn drop(&mut self) {
        // Before the reservation's own drop gives its bytes back.
        self.reservation.recycle(std::mem::take(&mut self.buffer));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_reservation_waits_until_enough_is_given_back() {
        let budget = UploadBudget::new(400);
        let first = budget.reserve(Kind::Part, 200).await;
        let mut second = budget.reserve(Kind::Part, 100).await;
        let waiting = tokio::spawn({
            let budget = budget.clone();
            async move { budget.reserve(Kind::Part, 150).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "only 0 bytes of parts are free");
        second.shrink_to(40);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "60 bytes free, 150 wanted");
        drop(first);
        let third = waiting.await.unwrap();
        assert_eq!(budget.held(), 40 + 150);
        assert_eq!(budget.peak(), 300);
        drop((second, third));
        assert_eq!(budget.held(), 0);
    }

    #[tokio::test]
    async fn starts_and_parts_are_separate_pools() {
        let budget = UploadBudget::new(400);
        let _parts = budget.reserve(Kind::Part, 300).await;
        // The parts pool is empty, yet an upload can still start.
        let _start = budget.reserve(Kind::Start, 100).await;
        assert_eq!(budget.peak(), 400);
        assert_eq!(budget.total(), 400);
    }

    /// A part of `len` bytes as an upload fills it.
    async fn filled_part(budget: &UploadBudget, len: usize, byte: u8) -> Bytes {
        let mut part = budget.reserve(Kind::Part, len).await;
        let mut buffer = part.buffer();
        assert!(buffer.is_empty(), "a reused buffer is empty");
        buffer.extend_from_slice(&vec![byte; len]);
        part.hold(buffer)
    }

    #[tokio::test]
    async fn held_bytes_keep_their_reservation_until_the_last_copy_is_dropped() {
        let budget = UploadBudget::new(400);
        let bytes = filled_part(&budget, 100, 7).await;
        let copy = bytes.clone();
        drop(bytes);
        assert_eq!(budget.held(), 100, "a copy still holds the buffer");
        assert_eq!(copy, vec![7; 100]);
        drop(copy);
        assert_eq!(budget.held(), 0);
    }

    #[tokio::test]
    async fn part_buffers_are_reused_within_the_parts_pool() {
        let budget = UploadBudget::new(400);
        for round in 0..10 {
            let bytes = filled_part(&budget, 100, round).await;
            assert_eq!(bytes, vec![round; 100]);
        }
        assert_eq!(budget.part_bytes_allocated(), 100, "one buffer, reused");

        // Three parts at once need three buffers, and all three are kept.
        let mut parts = Vec::new();
        for round in 0..3 {
            parts.push(filled_part(&budget, 100, round).await);
        }
        assert_eq!(budget.part_bytes_allocated(), 300);
        drop(parts);
        let _part = filled_part(&budget, 100, 9).await;
        assert_eq!(budget.part_bytes_allocated(), 300, "taken from the spares");
    }

    #[tokio::test]
    async fn spare_buffers_and_reserved_parts_never_exceed_the_parts_pool() {
        let budget = UploadBudget::new(400);
        let a = filled_part(&budget, 100, 1).await;
        let b = filled_part(&budget, 100, 2).await;
        let c = budget.reserve(Kind::Part, 100).await;
        drop(a);
        let d = budget.reserve(Kind::Part, 100).await;
        // Reserved: c and d; spare: a's buffer. Keeping b's as well would
        // put 400 bytes of parts in memory.
        drop(b);
        drop((c, d));
        let _first = filled_part(&budget, 100, 3).await;
        assert_eq!(budget.part_bytes_allocated(), 200, "a's buffer is reused");
        let _second = filled_part(&budget, 100, 4).await;
        assert_eq!(budget.part_bytes_allocated(), 300, "b's buffer was let go");
    }

    #[tokio::test]
    async fn only_a_reservation_with_a_new_buffer_shrinks() {
        let budget = UploadBudget::new(400);
        let mut fresh = budget.reserve(Kind::Part, 100).await;
        let mut buffer = fresh.buffer();
        buffer.extend_from_slice(&[5; 10]);
        fresh.shrink_to(10);
        assert_eq!(budget.held(), 10, "its other pages were never touched");
        drop(fresh.hold(buffer));
        assert_eq!(budget.held(), 0);

        let mut reused = budget.reserve(Kind::Part, 100).await;
        let mut buffer = reused.buffer();
        assert_eq!(budget.part_bytes_allocated(), 100, "the first buffer again");
        buffer.extend_from_slice(&[6; 10]);
        reused.shrink_to(10);
        assert_eq!(budget.held(), 100, "a reused buffer is all in memory");
        drop(reused.hold(buffer));
        assert_eq!(budget.held(), 0);
    }

    #[tokio::test]
    async fn start_buffers_are_not_kept() {
        let budget = UploadBudget::new(400);
        let mut start = budget.reserve(Kind::Start, 100).await;
        let buffer = start.buffer();
        drop(start.hold(buffer));
        assert_eq!(budget.part_bytes_allocated(), 0);
        assert!(budget.spare_parts().is_empty());
        assert_eq!(budget.held(), 0);
    }

    #[test]
    fn a_budget_too_small_for_one_part_is_refused() {
        let budget = UploadBudget::new(40);
        assert!(budget.check_fits(10, 30).is_ok());
        assert!(budget.check_fits(10, 31).is_err());
        assert!(budget.check_fits(11, 30).is_err());
    }
}
