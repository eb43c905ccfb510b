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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

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
        }
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
}

impl Reservation {
    /// Gives back all but `bytes` (a body that ended short of what was
    /// reserved for it).
    pub(super) fn shrink_to(&mut self, bytes: usize) {
        if bytes < self.bytes {
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

    #[test]
    fn a_budget_too_small_for_one_part_is_refused() {
        let budget = UploadBudget::new(40);
        assert!(budget.check_fits(10, 30).is_ok());
        assert!(budget.check_fits(10, 31).is_err());
        assert!(budget.check_fits(11, 30).is_err());
    }
}
