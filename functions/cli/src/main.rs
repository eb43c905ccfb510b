//! `kode`: the KODE API from the command line (and, added by their own
//! modules, the local pipeline: serve, demo, dead-letters, sync).

mod cmd;
mod error;
mod output;
mod settings;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error::CliError;
use crate::settings::GlobalArgs;

const AFTER_HELP: &str = "\
Configuration (flags > environment > config file):
  KODE_API_URL, KODE_AUTH_URL, KODE_CLIENT_ID, KODE_CLIENT_SECRET, KODE_USERNAME,
  KODE_PASSWORD, as environment variables or as KEY=VALUE lines in the config file.
  Secrets have no flags, so they never show up in the process list.

Exit codes: 0 ok, 1 KODE or network error, 2 invalid input or configuration.

Examples:
  kode auth check
  kode products --municipality 0301
  kode order create cadastre --cadastre 0301-207-45-0-0 --product WI03010033 \\
    --reference OPPDRAG-2024-0042 --dry-run
  kode order get 2345678";

#[derive(Parser, Debug)]
#[command(name = "kode", version, about = "Work with Ambita KODE: products, prices, orders", after_help = AFTER_HELP)]
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
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
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
    }
}

/// Warnings (e.g. retries) go to stderr so stdout stays the command's output;
/// `RUST_LOG=debug` shows more.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
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
