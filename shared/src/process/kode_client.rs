//! The real KODE client behind the processor's [`KodeSource`] port.

use async_trait::async_trait;

use super::KodeSource;
use crate::api::{ApiError, KodeClient};
use crate::model::{Order, OrderId};
use crate::stream::ChunkSource;
use crate::Deadline;

#[async_trait]
impl KodeSource for KodeClient {
    async fn get_order(&self, id: OrderId, deadline: Deadline) -> Result<Order, ApiError> {
        KodeClient::get_order(self, id, deadline).await
    }

    async fn download(
        &self,
        url: &str,
        deadline: Deadline,
    ) -> Result<Box<dyn ChunkSource>, ApiError> {
        Ok(Box::new(KodeClient::download(self, url, deadline).await?))
    }
}
