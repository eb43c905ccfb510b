//! Signed webhooks for `kode serve`, the Standard Webhooks way: each event
//! is POSTed to `NOTIFY_URL` with `webhook-id` (the event id),
//! `webhook-timestamp` (Unix seconds) and `webhook-signature` (`v1,` and the
//! base64 HMAC-SHA256 of `id.timestamp.body`, keyed with the decoded part of
//! `NOTIFY_SECRET` after `whsec_`).
//!
//! [`WebhookAnnouncer`] only queues (durably, in `notify.sqlite`), so a
//! receiver that is down never holds up an order; [`WebhookSender`] works
//! the queue off with retries and backoff.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use jiff::Timestamp;
use sha2::Sha256;
use tokio::sync::watch;
use tracing::{error, info, warn};
use url::Url;

use super::{AnnounceError, Announcer};
use crate::events::Event;
use crate::store::local::{Delivery, DeliveryFailure, SqliteDeliveries};

const SECRET_PREFIX: &str = "whsec_";
/// A receiver gets this long to answer one delivery.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// How often an idle sender looks for deliveries another process made due
/// (`kode dead-letters retry`); new events in this process wake it at once.
const IDLE_POLL: Duration = Duration::from_secs(1);
const BATCH: u32 = 20;

/// The signing key from `NOTIFY_SECRET` (`whsec_` + base64). Never printed.
#[derive(Clone)]
pub struct NotifySecret(Vec<u8>);

/// Why `NOTIFY_SECRET` was refused (the value itself is never included).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifySecretError {
    #[error("must start with whsec_ followed by base64")]
    Prefix,
    #[error("the part after whsec_ is not valid base64")]
    Base64,
    #[error("the key is shorter than 24 bytes; generate one with `openssl rand -base64 32`")]
    TooShort,
}

impl NotifySecret {
    pub fn parse(value: &str) -> Result<NotifySecret, NotifySecretError> {
        let encoded = value
            .trim()
            .strip_prefix(SECRET_PREFIX)
            .ok_or(NotifySecretError::Prefix)?;
        let key = BASE64
            .decode(encoded)
            .map_err(|_| NotifySecretError::Base64)?;
        if key.len() < 24 {
            return Err(NotifySecretError::TooShort);
        }
        Ok(NotifySecret(key))
    }

    /// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &str) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts keys of any length");
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body.as_bytes());
        format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
    }
}

impl fmt::Debug for NotifySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NotifySecret(***)")
    }
}

/// Queues events for delivery: taken once the queue is durable.
#[derive(Clone)]
pub struct WebhookAnnouncer {
    deliveries: SqliteDeliveries,
}

impl WebhookAnnouncer {
    pub fn new(deliveries: SqliteDeliveries) -> Self {
        WebhookAnnouncer { deliveries }
    }
}

#[async_trait]
impl Announcer for WebhookAnnouncer {
    async fn announce(&self, events: &[Event]) -> Vec<Result<(), AnnounceError>> {
        let queued = events
            .iter()
            .map(|e| (e.id.0.clone(), e.webhook_body()))
            .collect();
        let result = self.deliveries.enqueue(queued).await.map_err(|e| {
            if e.is_retryable() {
                AnnounceError::Unavailable(e.to_string())
            } else {
                AnnounceError::Rejected(e.to_string())
            }
        });
        events.iter().map(|_| result.clone()).collect()
    }
}

/// Posts queued deliveries to the receiver until stopped.
pub struct WebhookSender {
    deliveries: SqliteDeliveries,
    client: reqwest::Client,
    url: Url,
    secret: NotifySecret,
}

impl WebhookSender {
    pub fn new(
        deliveries: SqliteDeliveries,
        url: Url,
        secret: NotifySecret,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            // A redirect would re-send the signed body somewhere else.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(WebhookSender {
            deliveries,
            client,
            url,
            secret,
        })
    }

    /// Delivers until `stop` turns true. A delivery in progress finishes;
    /// the rest stay queued for the next start.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            let due = match self.deliveries.due(Timestamp::now(), BATCH).await {
                Ok(due) => due,
                Err(e) => {
                    error!(action = "notify_queue_failed", error = %e, "cannot read the delivery queue");
                    Vec::new()
                }
            };
            if due.is_empty() {
                tokio::select! {
                    () = self.deliveries.wait_for_work(self.idle_wait().await) => {}
                    _ = stop.wait_for(|stop| *stop) => return,
                }
                continue;
            }
            for delivery in due {
                if *stop.borrow() {
                    return;
                }
                self.deliver(&delivery).await;
            }
        }
    }

    /// Until the next retry is due, at most [`IDLE_POLL`].
    async fn idle_wait(&self) -> Duration {
        match self.deliveries.next_due().await {
            Ok(Some(at)) => {
                let wait = at.as_millisecond() - Timestamp::now().as_millisecond();
                Duration::from_millis(u64::try_from(wait).unwrap_or(0)).min(IDLE_POLL)
            }
            _ => IDLE_POLL,
        }
    }

    async fn deliver(&self, delivery: &Delivery) {
        let id = delivery.event_id.as_str();
        let result = self.post(delivery).await;
        let settled = match &result {
            Ok(()) => self.deliveries.delivered(id).await.map(|()| None),
            Err(error) => self
                .deliveries
                .failed(id, error, Timestamp::now())
                .await
                .map(Some),
        };
        match (settled, result) {
            (Ok(None), _) => {
                info!(
                    action = "event_delivered",
                    eventId = id,
                    attempt = delivery.attempts + 1,
                    "event delivered"
                )
            }
            (Ok(Some(DeliveryFailure::Retrying { attempt, ready_at })), Err(error)) => {
                warn!(action = "event_delivery_failed", eventId = id, attempt, retryAt = %ready_at, error, "event not delivered; it will be retried")
            }
            (Ok(Some(DeliveryFailure::Dead { attempts })), Err(error)) => {
                error!(
                    action = "event_dead_letter",
                    eventId = id,
                    attempts,
                    error,
                    "event not delivered after the last attempt; see `kode dead-letters`"
                )
            }
            (Ok(Some(_)), Ok(())) => {}
            // Left as it was: delivered again later, a duplicate the
            // receiver drops by its webhook-id.
            (Err(e), _) => {
                error!(action = "notify_queue_failed", eventId = id, error = %e, "cannot update the delivery queue")
            }
        }
    }

    /// One attempt; the error names the status or what failed, never the
    /// URL (it may carry credentials).
    async fn post(&self, delivery: &Delivery) -> Result<(), String> {
        let timestamp = Timestamp::now().as_second();
        let signature = self
            .secret
            .sign(&delivery.event_id, timestamp, &delivery.body);
        let response = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &delivery.event_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(delivery.body.clone())
            .send()
            .await
            .map_err(|e| format!("no answer: {}", e.without_url()))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the receiver answered {status}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_standard_webhooks() {
        // The example of the Standard Webhooks specification's reference
        // implementations (svix): key, id, timestamp and body give this
        // signature.
        let secret = NotifySecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn a_malformed_secret_is_refused_without_echoing_it() {
        for (value, expected) in [
            (
                "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                NotifySecretError::Prefix,
            ),
            ("whsec_not base64!", NotifySecretError::Base64),
            ("whsec_c2hvcnQ=", NotifySecretError::TooShort),
        ] {
            let error = NotifySecret::parse(value).unwrap_err();
            assert_eq!(error, expected);
            assert!(!error.to_string().contains(value));
        }
        let secret = NotifySecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(format!("{secret:?}"), "NotifySecret(***)");
    }
}
