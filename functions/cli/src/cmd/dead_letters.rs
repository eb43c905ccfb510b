//! `kode dead-letters`: what `kode serve` gave up on (pushes, and event
//! deliveries to `--notify-url`), and trying it again.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use kode::envelope::{parse_message, QueueMessage};
use kode::model::Push;
use kode::store::local::{
    DeadDelivery, DeadLetter, DeliveryOptions, QueueOptions, SqliteDeliveries, SqliteQueue,
};

use crate::error::CliError;

#[derive(Args, Debug)]
pub struct DeadLettersArgs {
    /// The data directory of `kode serve`
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        env = "KODE_DATA_DIR",
        hide_env_values = true,
        default_value = "./kode-data"
    )]
    pub data_dir: PathBuf,
    #[command(subcommand)]
    pub action: Option<DeadLetterAction>,
}

#[derive(Subcommand, Debug)]
pub enum DeadLetterAction {
    /// List the dead letters (the default)
    List,
    /// Queue every dead letter and dead event delivery again; a running
    /// `kode serve` picks them up
    Retry,
}

pub async fn run(args: DeadLettersArgs) -> Result<(), CliError> {
    let queue = open(&args.data_dir).await?;
    let deliveries = open_deliveries(&args.data_dir).await?;
    match args.action.unwrap_or(DeadLetterAction::List) {
        DeadLetterAction::List => {
            list(&queue, &args.data_dir).await?;
            if let Some(deliveries) = &deliveries {
                list_deliveries(deliveries).await?;
            }
            Ok(())
        }
        DeadLetterAction::Retry => {
            let count = queue.retry_dead_letters().await.map_err(store)?;
            println!(
                "{count} dead letter(s) queued again in {}; a running `kode serve` on it processes them",
                args.data_dir.display()
            );
            if let Some(deliveries) = &deliveries {
                let count = deliveries.retry_dead().await.map_err(store)?;
                println!(
                    "{count} event delivery(ies) queued again; a running `kode serve --notify-url` sends them"
                );
            }
            Ok(())
        }
    }
}

/// The delivery queue exists once `kode serve` ran with `--notify-url`.
async fn open_deliveries(data_dir: &Path) -> Result<Option<SqliteDeliveries>, CliError> {
    let path = data_dir.join(SqliteDeliveries::FILE);
    if !path.is_file() {
        return Ok(None);
    }
    SqliteDeliveries::open(&path, DeliveryOptions::default())
        .await
        .map(Some)
        .map_err(store)
}

async fn list_deliveries(deliveries: &SqliteDeliveries) -> Result<(), CliError> {
    let dead = deliveries.dead().await.map_err(store)?;
    if dead.is_empty() {
        println!("no undelivered events");
        return Ok(());
    }
    println!("{} event(s) not delivered to --notify-url:", dead.len());
    for delivery in &dead {
        println!(
            "  {}  {}  attempts {}  failed {}",
            event_type(delivery),
            delivery.event_id,
            delivery.attempts,
            delivery.dead_at,
        );
        println!("      error: {}", delivery.last_error);
    }
    Ok(())
}

/// The body's `type`, e.g. `asset.stored`.
fn event_type(delivery: &DeadDelivery) -> String {
    serde_json::from_str::<serde_json::Value>(&delivery.body)
        .ok()
        .and_then(|body| body["type"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "event".to_owned())
}

/// Opens an existing queue only: a typo in `--data-dir` must not create an
/// empty one and report "no dead letters".
async fn open(data_dir: &Path) -> Result<SqliteQueue, CliError> {
    let path = data_dir.join("queue.sqlite");
    if !path.is_file() {
        return Err(CliError::Usage(format!(
            "no queue at {}: is --data-dir the directory `kode serve` uses?",
            path.display()
        )));
    }
    SqliteQueue::open(&path, QueueOptions::default())
        .await
        .map_err(store)
}

async fn list(queue: &SqliteQueue, data_dir: &Path) -> Result<(), CliError> {
    let letters = queue.dead_letters().await.map_err(store)?;
    if letters.is_empty() {
        println!("no dead letters in {}", data_dir.display());
        return Ok(());
    }
    println!(
        "{} dead letter(s) in {}:",
        letters.len(),
        data_dir.display()
    );
    for letter in &letters {
        println!(
            "  {}  {}  attempts {}  failed {}",
            describe(letter),
            letter.group,
            letter.attempts,
            letter.failed_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
        );
        println!("      error: {}", letter.last_error);
    }
    println!(
        "To process them again: kode dead-letters retry --data-dir {}",
        data_dir.display()
    );
    Ok(())
}

/// `order 123 UPDATED`, `order 123 sweep`, or what else the message holds.
fn describe(letter: &DeadLetter) -> String {
    match parse_message(&letter.body) {
        Ok(QueueMessage::Push(envelope)) => match envelope.push {
            Push::Order(push) => format!("order {} {}", push.order_id, push.status),
            Push::Distributor(_) => "distributor message".to_owned(),
        },
        Ok(QueueMessage::Sweep(sweep)) => format!("order {} sweep", sweep.order_id),
        Err(_) => format!("unreadable message {}", letter.id),
    }
}

fn store(e: kode::store::StoreError) -> CliError {
    CliError::Other(e.into())
}
