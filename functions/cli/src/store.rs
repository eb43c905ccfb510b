//! Where `kode sync` and `kode order get` find the files and the ledger: the
//! data directory of `kode serve`, or the bucket and table of the AWS
//! deployment.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use kode::model::{AssetId, OrderId};
use kode::model::{AssetState, ObjectKey};
use kode::store::aws::{DynamoLedger, S3Blobs};
use kode::store::local::DiskBlobs;
use kode::store::{Blobs, Ledger};
use kode::sync::FailedPolicy;

use crate::cmd::order_view::failed_place;

use crate::error::CliError;
use crate::pipeline::LocalStore;
use crate::settings::Settings;

#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Store")]
pub struct StoreArgs {
    /// Local store: the data directory of `kode serve` (DIR/ledger.sqlite, DIR/assets/)
    #[arg(long, value_name = "DIR", conflicts_with_all = ["bucket", "table"])]
    pub data_dir: Option<PathBuf>,
    /// AWS store: the asset bucket (else ASSET_BUCKET); needs --table
    #[arg(long, value_name = "BUCKET")]
    pub bucket: Option<String>,
    /// AWS store: the ledger table (else LEDGER_TABLE); needs --bucket
    #[arg(long, value_name = "TABLE")]
    pub table: Option<String>,
}

/// Whether opening a data directory that is not there yet is fine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// Writing commands start a new one, as `kode serve` does.
    Create,
    /// Reading commands would only see an empty ledger: refuse.
    Refuse,
}

pub struct Store {
    pub blobs: Arc<dyn Blobs>,
    pub ledger: Arc<dyn Ledger>,
    place: Place,
}

enum Place {
    Local(DiskBlobs),
    S3 { bucket: String },
}

impl Store {
    /// The configured store: `--data-dir` first, then `--bucket`/`--table`,
    /// then ASSET_BUCKET/LEDGER_TABLE (environment or config file). `None`
    /// when none is configured.
    pub async fn open(
        args: &StoreArgs,
        settings: &Settings,
        missing: Missing,
    ) -> Result<Option<Store>, CliError> {
        if let Some(dir) = &args.data_dir {
            let ledger_file = dir.join(LocalStore::LEDGER_FILE);
            if missing == Missing::Refuse && !ledger_file.exists() {
                return Err(CliError::invalid(
                    "--data-dir",
                    format!(
                        "{} does not exist (is {} the data directory of `kode serve`?)",
                        ledger_file.display(),
                        dir.display()
                    ),
                ));
            }
            let local = LocalStore::open(dir).await?;
            return Ok(Some(Store {
                blobs: Arc::new(local.blobs.clone()),
                ledger: Arc::new(local.ledger),
                place: Place::Local(local.blobs),
            }));
        }
        let bucket = args
            .bucket
            .clone()
            .or_else(|| settings.value("ASSET_BUCKET"));
        let table = args
            .table
            .clone()
            .or_else(|| settings.value("LEDGER_TABLE"));
        let (bucket, table) = match (bucket, table) {
            (None, None) => return Ok(None),
            (Some(bucket), Some(table)) => (bucket, table),
            (Some(_), None) => {
                return Err(CliError::Usage(
                    "--bucket needs --table (or LEDGER_TABLE)".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(CliError::Usage(
                    "--table needs --bucket (or ASSET_BUCKET)".into(),
                ))
            }
        };
        let aws = settings.aws().await;
        Ok(Some(Store {
            blobs: Arc::new(S3Blobs::new(kode::aws::s3_client(aws), bucket.clone())),
            ledger: Arc::new(DynamoLedger::new(aws_sdk_dynamodb::Client::new(aws), table)),
            place: Place::S3 { bucket },
        }))
    }

    /// Where a stored object is: `local <path>` or `s3://bucket/key`.
    pub fn location(&self, key: &ObjectKey) -> String {
        match &self.place {
            Place::Local(blobs) => match blobs.path_of(key) {
                Ok(path) => format!("local {}", path.display()),
                // The ledger holds a key the disk store would refuse.
                Err(_) => format!("local {key} (invalid key)"),
            },
            Place::S3 { bucket } => format!("s3://{bucket}/{key}"),
        }
    }

    /// Where files go: the `assets/` directory or the bucket.
    pub fn describe(&self) -> String {
        match &self.place {
            Place::Local(blobs) => format!("local {}", blobs.root().display()),
            Place::S3 { bucket } => format!("s3://{bucket}"),
        }
    }

    /// Per asset of the order that the ledger knows: its location when
    /// stored, `deleted` when marked deleted, FAILED or PARKED (per `failed`)
    /// with the reason.
    pub async fn asset_places(
        &self,
        order: OrderId,
        failed: &FailedPolicy,
    ) -> Result<BTreeMap<AssetId, String>, CliError> {
        let records = self.ledger.order_assets(order).await?;
        Ok(records
            .into_iter()
            .map(|record| {
                let place = match (record.state, &record.key) {
                    (AssetState::Deleted, _) => "deleted".to_owned(),
                    (AssetState::Stored, Some(key)) => self.location(key),
                    (AssetState::Stored, None) => "stored".to_owned(),
                    (AssetState::Failed, _) => match &record.failure {
                        Some(f) => failed_place(failed.is_parked(f), f.attempts, &f.reason),
                        None => "FAILED".to_owned(),
                    },
                };
                (record.asset_id, place)
            })
            .collect())
    }
}
