//! `kode order create|get`.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand};
use kode::api::ApiError;
use kode::model::OrderRecord;
use kode::model::{CreateOrderRequest, OrderData, OrderId, RequestError};
use kode::store::aws::DynamoLedger;
use kode::store::Ledger;
use kode::sync::FailedPolicy;
use kode::sync::SweepPolicy;

use super::input::{CadastreArgs, DeliveryArgs, MapArgs, ProductArgs, ShareArgs};
use super::order_view;
use crate::error::{request, CliError};
use crate::output;
use crate::pipeline::LocalStore;
use crate::settings::{GlobalArgs, Settings};
use crate::store::{Missing, Store, StoreArgs};

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  kode order create cadastre --cadastre 0301-207-45-0-0 --product WI03010033 --reference R1 --dry-run\n  kode order get 2345678"
)]
pub struct OrderArgs {
    #[command(subcommand)]
    command: OrderCommand,
}

#[derive(Subcommand, Debug)]
enum OrderCommand {
    /// Place an order (or show its body with --dry-run)
    #[command(
        after_help = "Examples:\n  kode order create cadastre --cadastre 0301-207-45-0-0 --product WI03010033 --reference R1 --dry-run\n  kode order create share --organization-number 948677202 --share-number 57 --product WI03010150 --reference R2"
    )]
    Create {
        #[command(subcommand)]
        kind: Box<CreateKind>,
    },
    /// Show an order's status, lines and delivered files (and where they are stored)
    #[command(
        after_help = "With a store (--data-dir, or --bucket/--table, or ASSET_BUCKET/LEDGER_TABLE), each file\nshows where it is stored, `deleted` when it was removed, `-` when not stored.\n\nExamples:\n  kode order get 2345678\n  kode order get 2345678 --data-dir ./kode-data\n  kode order get 2345678 --json"
    )]
    Get {
        /// The order (collection) id, as returned by `order create` and sent in pushes
        #[arg(value_name = "ID")]
        id: OrderId,
        /// Print KODE's response as it came (without store information)
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Subcommand, Debug)]
enum CreateKind {
    /// Order by cadastre unit (matrikkel)
    #[command(
        after_help = "Example:\n  kode order create cadastre --cadastre 0301-207-45-0-0 \\\n    --address 'Storgata 12, 0155 Oslo' --product WI03010033 \\\n    --reference OPPDRAG-2024-0042 --technical-reference acme-7f3c2a --dry-run"
    )]
    Cadastre {
        #[command(flatten)]
        data: CadastreArgs,
        #[command(flatten)]
        common: CreateCommon,
    },
    /// Order by housing-cooperative share
    #[command(
        after_help = "Example:\n  kode order create share --organization-number 948677202 --share-number 57 \\\n    --product WI03010150 --reference OPPDRAG-2024-0043"
    )]
    Share {
        #[command(flatten)]
        data: ShareArgs,
        #[command(flatten)]
        common: CreateCommon,
    },
    /// Order by area (GeoJSON polygon in ETRS89 / UTM)
    #[command(
        after_help = "Example:\n  kode order create map --geojson area.geojson --spatial-reference 25833 \\\n    --product WI03016101 --product-data '{\"system\":\"UTM\"}' --reference OPPDRAG-2024-0044"
    )]
    Map {
        #[command(flatten)]
        data: MapArgs,
        #[command(flatten)]
        common: CreateCommon,
    },
}

#[derive(Args, Debug)]
struct CreateCommon {
    #[command(flatten)]
    products: ProductArgs,
    /// Groups orders and is the billing reference (typically the assignment key)
    #[arg(long, value_name = "TEXT")]
    reference: String,
    /// Your own unique id for this order; KODE echoes it in pushes
    #[arg(long, value_name = "TEXT")]
    technical_reference: Option<String>,
    #[command(flatten)]
    delivery: DeliveryArgs,
    /// Print the created order as JSON (as parsed by this tool)
    #[arg(long)]
    json: bool,
    /// Print the request body and send nothing (no token request either)
    #[arg(long)]
    dry_run: bool,
    /// Record the order in this `kode serve` data directory, so that its sweep fetches it even if no push comes
    #[arg(long, value_name = "DIR", conflicts_with = "table")]
    data_dir: Option<PathBuf>,
    /// Record the order in this ledger table (AWS), so that the sweeper fetches it even if no push comes
    #[arg(long, value_name = "TABLE")]
    table: Option<String>,
}

pub async fn run(args: OrderArgs, global: &GlobalArgs) -> Result<(), CliError> {
    match args.command {
        OrderCommand::Create { kind } => create(*kind, global).await,
        OrderCommand::Get { id, json, store } => get(id, json, &store, global).await,
    }
}

async fn create(kind: CreateKind, global: &GlobalArgs) -> Result<(), CliError> {
    let (order_data, common) = match &kind {
        CreateKind::Cadastre { data, common } => (data.order_data()?, common),
        CreateKind::Share { data, common } => (data.order_data(), common),
        CreateKind::Map { data, common } => (data.order_data()?, common),
    };
    let body = build(order_data, common)?;
    if common.dry_run {
        eprintln!("dry run: POST /kode/v1/orders/{} not sent", body.kind());
        output::print_json(&body)?;
        return Ok(());
    }
    let settings = Settings::load(global)?;
    let client = settings.client().await?;
    // Opened first: a wrong directory or table is found before anything is
    // ordered (and billed).
    let ledger = order_ledger(common, &settings).await?;
    let created = client
        .create_order(body.kind(), &body, settings.deadline())
        .await
        .map_err(|e| maybe_created(e, &body))?;
    let order = created.order;
    if common.json {
        output::print_json(&created.raw)?;
    } else {
        output::print(&format!(
            "Created order {}.\n\n{}",
            order.id,
            order_view::render(&order, None)
        ))?;
    }
    if let Some(ledger) = ledger {
        record_created(ledger.as_ref(), order.id, &body).await?;
    }
    Ok(())
}

/// The ledger named by `--data-dir` or `--table`, and only those: a
/// `LEDGER_TABLE` in the environment is for the commands that read a store.
async fn order_ledger(
    common: &CreateCommon,
    settings: &Settings,
) -> Result<Option<Arc<dyn Ledger>>, CliError> {
    if let Some(dir) = &common.data_dir {
        let store = LocalStore::open(dir).await?;
        return Ok(Some(Arc::new(store.ledger)));
    }
    if let Some(table) = &common.table {
        let aws = settings.aws().await;
        return Ok(Some(Arc::new(DynamoLedger::new(
            aws_sdk_dynamodb::Client::new(aws),
            table.clone(),
        ))));
    }
    Ok(None)
}

/// The order with its references, open for the sweep: its first push is
/// then not the only way its files arrive.
async fn record_created(
    ledger: &dyn Ledger,
    id: OrderId,
    body: &CreateOrderRequest,
) -> Result<(), CliError> {
    let now = jiff::Timestamp::now();
    let record = OrderRecord {
        order_id: Some(id),
        reference: Some(body.reference().to_owned()),
        technical_reference: body.technical_reference().map(str::to_owned),
        updated_at: Some(now.to_string()),
        sweep_until: SweepPolicy::default().open_until(None, None, now),
        ..OrderRecord::default()
    };
    ledger.upsert_order(&record).await.map_err(|e| {
        CliError::Other(anyhow::anyhow!(
            "order {id} was created, but recording it in the ledger failed: {e}\n\
             Its first push records it; to have it swept before that, run \
             `kode sync {id}` with the same store."
        ))
    })
}

/// Only a 4xx answer or a failed connection proves KODE did not take the
/// order; after a 5xx or a connection lost mid-request it may have, and
/// KODE has no search to find out, so running the command again could order
/// (and bill) twice.
fn maybe_created(error: ApiError, body: &CreateOrderRequest) -> CliError {
    let refused = error
        .status()
        .is_some_and(|s| (400..500).contains(&s) && s != 429);
    if refused || matches!(error, ApiError::Connect { .. }) {
        return CliError::Kode(error);
    }
    let trace = match body.technical_reference() {
        Some(r) => format!("look for technical reference {r:?} in the pushes you receive"),
        None => "watch for a push with your reference".to_owned(),
    };
    CliError::Other(anyhow::anyhow!(
        "{error}\nKODE may have placed the order anyway; before running this again, {trace} \
         (reference {:?}).",
        body.reference()
    ))
}

fn build(order_data: OrderData, common: &CreateCommon) -> Result<CreateOrderRequest, CliError> {
    let mut body =
        CreateOrderRequest::new(order_data, common.products.selections()?, &common.reference)
            .map_err(|e| match e {
                RequestError::NoProducts => CliError::invalid("--product", e),
                e => CliError::invalid("--reference", e),
            })?;
    if let Some(reference) = &common.technical_reference {
        body = body
            .with_technical_reference(reference)
            .map_err(request("--technical-reference"))?;
    }
    body.with_delivery_information(common.delivery.information())
        .map_err(|e| match e {
            RequestError::PostalCode(_) => CliError::invalid("--delivery-postal-code", e),
            RequestError::Email(_) => CliError::invalid("--delivery-email", e),
            e => CliError::invalid("delivery information", e),
        })
}

async fn get(
    id: OrderId,
    json: bool,
    store: &StoreArgs,
    global: &GlobalArgs,
) -> Result<(), CliError> {
    let settings = Settings::load(global)?;
    if json {
        let client = settings.client().await?;
        let raw = client
            .get_json(&format!("/kode/v1/orders/{id}"), settings.deadline())
            .await?;
        output::print_json(&raw)?;
        return Ok(());
    }
    let store = Store::open(store, &settings, Missing::Refuse).await?;
    let client = settings.client().await?;
    let order = client.get_order(id, settings.deadline()).await?;
    let places = match &store {
        Some(store) => {
            let failed = FailedPolicy {
                max_attempts: settings.failed_max_attempts()?,
                retry_parked: false,
            };
            Some(store.asset_places(id, &failed).await?)
        }
        None => None,
    };
    output::print(&order_view::render(&order, places.as_ref()))?;
    Ok(())
}
