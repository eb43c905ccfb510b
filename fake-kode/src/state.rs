//! The fake's mutable world: orders, tokens, scripted faults and counters,
//! behind one mutex shared by the handle and the request handlers.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::spec::{AssetSpec, Edition, Endpoint, FakeCredentials, OrderSpec};

/// A scripted answer that replaces the next normal response of an endpoint.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Fault {
    Status(u16),
    RateLimit { retry_after_secs: u64 },
}

pub(crate) struct State {
    pub(crate) base_url: String,
    pub(crate) credentials: FakeCredentials,
    inner: Mutex<Inner>,
}

#[derive(Default)]
pub(crate) struct Inner {
    pub(crate) edition: Edition,
    pub(crate) orders: BTreeMap<u64, OrderSpec>,
    pub(crate) download_urls: HashMap<String, String>,
    pub(crate) next_id: u64,

    pub(crate) down: bool,
    pub(crate) faults: HashMap<Endpoint, VecDeque<Fault>>,
    pub(crate) slow: HashMap<String, Duration>,
    pub(crate) truncate: HashMap<String, u64>,
    pub(crate) redirect: HashMap<String, String>,

    /// Access token -> expiry.
    pub(crate) access_tokens: HashMap<String, Instant>,
    pub(crate) refresh_tokens: HashSet<String>,
    pub(crate) token_lifetime_secs: u64,
    pub(crate) reject_refresh: bool,
    pub(crate) omit_token_lifetime: bool,

    pub(crate) requests: HashMap<Endpoint, u32>,
    pub(crate) downloads: HashMap<String, u32>,
    pub(crate) grants: HashMap<String, u32>,
    pub(crate) created_orders: Vec<(String, Value)>,
    pub(crate) price_requests: Vec<(String, Value)>,
}

impl State {
    pub(crate) fn new(base_url: String) -> State {
        State {
            base_url,
            credentials: FakeCredentials::fixed(),
            inner: Mutex::new(Inner {
                token_lifetime_secs: 3600,
                next_id: 2_345_678,
                ..Inner::default()
            }),
        }
    }

    /// A panicking test must not wedge the fake for the tests that follow.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn default_download_url(&self, asset_id: &str) -> String {
        format!("{}/shopping/v2/assets/{asset_id}", self.base_url)
    }
}

impl Inner {
    pub(crate) fn find_asset(&self, asset_id: &str) -> Option<&AssetSpec> {
        self.orders
            .values()
            .flat_map(|o| o.assets())
            .find(|a| a.id == asset_id)
    }

    pub(crate) fn issue_tokens(&mut self) -> (String, String, u64) {
        let access = random_token();
        let refresh = random_token();
        let lifetime = self.token_lifetime_secs;
        self.access_tokens.insert(
            access.clone(),
            Instant::now() + Duration::from_secs(lifetime),
        );
        self.refresh_tokens.insert(refresh.clone());
        (access, refresh, lifetime)
    }

    pub(crate) fn access_token_valid(&self, token: &str) -> bool {
        self.access_tokens
            .get(token)
            .is_some_and(|expiry| Instant::now() < *expiry)
    }

    /// Ids for orders created through the API, clear of scripted ones.
    pub(crate) fn allocate_id(&mut self) -> u64 {
        while self.orders.contains_key(&self.next_id) {
            self.next_id += 1;
        }
        let id = self.next_id;
        self.next_id += 1;
        id
    }
}

/// Opaque UUID-shaped tokens, like KODE's examples.
fn random_token() -> String {
    let hex = format!("{:032x}", fastrand::u128(..));
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}
