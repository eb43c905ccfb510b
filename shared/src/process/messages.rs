//! Distributor messages: stored once, logged for the right audience, and
//! announced as `distributor.message`.

use tracing::{info, warn};

use super::{ProcessError, Processor};
use crate::events::{self, EventScope};
use crate::model::MessageRecord;
use crate::model::{DistributorMessage, DistributorMessageType};
use crate::store::RecordOutcome;

impl Processor {
    /// Stores the message once per (`id`, `eventAction`) and logs it:
    /// `DISTRIBUTOR` messages (and unknown types) at warn, since they are
    /// for the integrator's support staff; `CUSTOMER` at info. A replay is
    /// logged at info only, so it does not alert twice.
    pub async fn store_message(
        &self,
        message: &DistributorMessage,
        received_at: &str,
    ) -> Result<RecordOutcome, ProcessError> {
        let record = MessageRecord {
            id: message.id.clone(),
            event_action: message.event_action.clone(),
            message_type: message.message_type.as_str().to_owned(),
            message: message.message.clone(),
            municipality_name: message.municipality_name.clone(),
            municipality_number: message.municipality_number.clone(),
            organization_code: message.organization_code.clone(),
            date_created: message.date_created.as_ref().map(|d| d.raw().to_owned()),
            received_at: received_at.to_owned(),
        };
        let event = self
            .announcing
            .as_ref()
            .map(|_| events::distributor_message(message, received_at));
        let outcome = self
            .ledger
            .record_message_announcing(&record, event.as_ref())
            .await
            .map_err(|cause| ProcessError::Store { order: None, cause })?;
        self.announce_pending(EventScope::Distributor).await;
        let (id, event, kind, text) = (
            record.id.as_str(),
            record.event_action.as_str(),
            record.message_type.as_str(),
            record.message.as_str(),
        );
        let municipality = record.municipality_name.as_deref();
        if outcome != RecordOutcome::Recorded {
            info!(
                action = "message_duplicate",
                messageId = id,
                eventAction = event,
                "distributor message already stored"
            );
        } else if message.message_type == DistributorMessageType::Customer {
            info!(
                action = "message_stored",
                messageId = id,
                eventAction = event,
                messageType = kind,
                municipality,
                text,
                "customer message"
            );
        } else {
            warn!(
                action = "message_stored",
                messageId = id,
                eventAction = event,
                messageType = kind,
                municipality,
                text,
                "distributor message for support staff"
            );
        }
        Ok(outcome)
    }
}
