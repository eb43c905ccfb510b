//! `kode`: the KODE API from the command line (and, added by their own
//! modules, the local pipeline: serve, demo, dead-letters, sync).

mod cmd;
mod error;
mod output;
mod pipeline;
mod settings;
mod store;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error::CliError;
use crate::settings::GlobalArgs;

const AFTER_HELP: &str = "\
Configuration (flags > environment > config file):
  KODE_API_URL, KODE_AUTH_URL, KODE_CLIENT_ID, KODE_CLIENT_SECRET, KODE_USERNAME,
  KODE_PASSWORD, as environment variables or as KEY=VALUE lines in the config file.
  Secrets have no flags, so they never show up in the process list.
  KODE_SECRET_ARN (an AWS Secrets Manager secret {client_id, client_secret,
  username, password}) replaces the four credentials. Store of sync and
  order get: --data-dir, or --bucket/--table (ASSET_BUCKET, LEDGER_TABLE).

Exit codes: 0 ok, 1 KODE, network or storage error, 2 invalid input or configuration.

Examples:
  kode demo
  kode auth check
  kode products --municipality 0301
  kode order create cadastre --cadastre 0301-207-45-0-0 --product WI03010033 \\
    --reference OPPDRAG-2024-0042 --dry-run
  kode order get 2345678 --data-dir ./kode-data
  kode sync 2345678 --data-dir ./kode-data
  kode sweep --data-dir ./kode-data --dry-run";

#[derive(Parser, Debug)]
#[command(name = "kode", version, about = "Work with Ambita KODE: products, prices, orders; receive its pushes locally (serve, demo); sync an order by hand", after_help = AFTER_HELP)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check the configured credentials
    Auth(cmd::auth::AuthArgs),
    /// List the products of a municipality
    Products(cmd::products::ProductsArgs),
    /// Ask KODE what an order would cost
    Price(cmd::price::PriceArgs),
    /// Create an order, or show one
    Order(cmd::order::OrderArgs),
    /// Receive KODE pushes and store the files locally (the whole pipeline, one process)
    Serve(cmd::serve::ServeArgs),
    /// See the whole flow against a simulated KODE, no account needed
    Demo(cmd::demo::DemoArgs),
    /// List or retry the pushes `kode serve` gave up on
    DeadLetters(cmd::dead_letters::DeadLettersArgs),
    /// Sync one order now, as the processor does for a push (local or AWS store)
    Sync(cmd::sync::SyncArgs),
    /// Queue a sync of every open order now (what `kode serve` and the sweeper Lambda do on a schedule)
    Sweep(cmd::sweep::SweepArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(matches!(cli.command, Command::Serve(_)));
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            if e.is_retryable() {
                eprintln!("hint: this looks temporary; try again later");
            }
            ExitCode::from(e.exit_code())
        }
    }
}

async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Auth(args) => cmd::auth::run(args, &cli.global).await,
        Command::Products(args) => cmd::products::run(args, &cli.global).await,
        Command::Price(args) => cmd::price::run(args, &cli.global).await,
        Command::Order(args) => cmd::order::run(args, &cli.global).await,
        Command::Serve(args) => cmd::serve::run(args, &cli.global).await,
        Command::Demo(args) => cmd::demo::run(args).await,
        Command::DeadLetters(args) => cmd::dead_letters::run(args).await,
        Command::Sync(args) => cmd::sync::run(args, &cli.global).await,
        Command::Sweep(args) => cmd::sweep::run(args, &cli.global).await,
    }
}

/// Warnings (e.g. retries) go to stderr so stdout stays the command's output;
/// `RUST_LOG=debug` shows more. `kode serve` is a service: it logs every
/// action as JSON lines (as the Lambdas do), still on stderr.
fn init_logging(service: bool) {
    let default = if service { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    if service {
        tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
        return;
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
