//! `kode auth check`: prove the configured credentials work.

use clap::{Args, Subcommand};
use serde_json::json;

use crate::error::CliError;
use crate::output;
use crate::settings::{GlobalArgs, Settings};

#[derive(Args, Debug)]
#[command(after_help = "Example:\n  kode auth check")]
pub struct AuthArgs {
    #[command(subcommand)]
    command: AuthCommand,
}

#[derive(Subcommand, Debug)]
enum AuthCommand {
    /// Obtain a token and show its scopes and the lifetime KODE granted (never the token itself)
    #[command(
        after_help = "Example:\n  KODE_CLIENT_ID=acme KODE_CLIENT_SECRET=... KODE_USERNAME=kari KODE_PASSWORD=... \\\n    kode auth check"
    )]
    Check {
        /// Print {"scopes": [...], "lifetimeSeconds": N, "lifetimeAssumed": bool} instead of text
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(args: AuthArgs, global: &GlobalArgs) -> Result<(), CliError> {
    let AuthCommand::Check { json } = args.command;
    let settings = Settings::load(global)?;
    let config = settings.api_config().await?;
    let token_url = config.auth_url.clone();
    let client = kode::api::KodeClient::new(config)?;
    let info = client.token_info(settings.deadline()).await?;
    if json {
        output::print_json(&json!({
            "scopes": info.scopes,
            "lifetimeSeconds": info.lifetime.as_secs(),
            "lifetimeAssumed": info.lifetime_assumed,
        }))?;
    } else {
        let scopes = if info.scopes.is_empty() {
            "(none listed)".to_owned()
        } else {
            info.scopes.join(" ")
        };
        let source = if info.lifetime_assumed {
            "assumed: KODE sent no expires_in"
        } else {
            "as granted by KODE"
        };
        output::print(&format!(
            "Authenticated at {token_url}\nScopes:     {scopes}\nLifetime:   {} ({source})\n",
            duration(info.lifetime.as_secs())
        ))?;
    }
    Ok(())
}

fn duration(secs: u64) -> String {
    match (secs / 3600, secs % 3600 / 60, secs % 60) {
        (0, 0, s) => format!("{s} s"),
        (0, m, s) => format!("{m} min {s} s"),
        (h, m, _) => format!("{h} h {m} min"),
    }
}
