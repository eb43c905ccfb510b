//! `kode serve`: the push pipeline on one machine. KODE pushes to
//! `POST /push`; files land under `<data-dir>/assets/`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use kode::announce::NotifySecret;
use kode::intake::PushSecret;
use kode::store::local::{DeliveryOptions, QueueOptions};
use kode::sync::FailedPolicy;
use kode::Secret;
use tracing::info;

use crate::error::CliError;
use crate::pipeline::{Notify, Pipeline, PipelineConfig};
use crate::settings::{GlobalArgs, Settings};

/// In-flight work gets this long after SIGINT/SIGTERM before it is put back
/// into the queue; together with the release itself it stays within the
/// 10 s a service manager usually allows.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(8);

const AFTER_HELP: &str = "\
Secrets come from the environment (or the config file), never from flags:
  PUSH_TOKEN           the push secret KODE sends (?token=, Bearer or Basic password)
  KODE_CLIENT_SECRET   and KODE_PASSWORD, with KODE_CLIENT_ID and KODE_USERNAME
  NOTIFY_SECRET        with --notify-url: whsec_ + base64 key signing the events
Also read: MAX_ASSET_BYTES, DOWNLOAD_HOSTS, SWEEP_FINISHED_DAYS (14: days a FINISHED
order is still swept), SWEEP_MAX_MISSES (3: sweeps KODE answers 404 before the
order is no longer swept).

In <data-dir>: assets/orders/<order>/<asset>/<file> (the files), ledger.sqlite
(what is stored), queue.sqlite (pushes not yet processed, dead letters),
notify.sqlite (events not yet delivered), tmp/, serve.lock (one kode serve per
data directory; a second one exits at once).
SIGINT/SIGTERM: stops taking pushes, gives work in progress 8 s, requeues the rest.";

#[derive(Args, Debug)]
#[command(after_help = AFTER_HELP)]
pub struct ServeArgs {
    /// Address for KODE's pushes (POST /push) and GET /healthz
    #[arg(
        long,
        value_name = "ADDR",
        env = "KODE_LISTEN",
        hide_env_values = true,
        default_value = "127.0.0.1:8080"
    )]
    pub listen: SocketAddr,
    /// How often open orders are synced without a push (90s, 15m, 1h, 1d; 0 turns it off)
    #[arg(
        long,
        value_name = "DURATION",
        env = "KODE_SWEEP_INTERVAL",
        hide_env_values = true,
        default_value = "1h",
        value_parser = kode::sync::parse_duration
    )]
    pub sweep_interval: Duration,
    /// POST every event (asset.stored, order.completed, ...) here, signed
    /// with NOTIFY_SECRET the Standard Webhooks way
    #[arg(long, value_name = "URL", env = "NOTIFY_URL", hide_env_values = true)]
    pub notify_url: Option<url::Url>,
    /// Tries of one event delivery before `kode dead-letters` lists it
    #[arg(long, value_name = "N", env = "NOTIFY_MAX_ATTEMPTS",
        hide_env_values = true, default_value_t = DeliveryOptions::default().max_attempts,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub notify_max_attempts: u32,
    /// Wait before the first delivery retry; doubled for each further one
    #[arg(
        long,
        value_name = "MS",
        env = "NOTIFY_RETRY_BACKOFF_MS",
        hide_env_values = true,
        default_value_t = 2000
    )]
    pub notify_retry_backoff_ms: u64,
    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

/// Storage, queue and worker settings.
#[derive(Args, Debug, Clone)]
pub struct PipelineArgs {
    /// Where the queue, the ledger and the files are kept
    #[arg(
        long,
        value_name = "DIR",
        env = "KODE_DATA_DIR",
        hide_env_values = true,
        default_value = "./kode-data"
    )]
    pub data_dir: PathBuf,
    /// Downloads of one push running at the same time
    #[arg(long, value_name = "N", env = "DOWNLOAD_CONCURRENCY",
        hide_env_values = true, default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub download_concurrency: u16,
    /// Orders processed at the same time (pushes of one order never are)
    #[arg(long, value_name = "N", env = "KODE_WORKERS",
        hide_env_values = true, default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: u16,
    /// Deliveries of a push before it goes to the dead-letter table
    #[arg(long, value_name = "N", env = "KODE_MAX_ATTEMPTS",
        hide_env_values = true, default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_attempts: u32,
    /// Wait before the first retry; doubled for each further one
    #[arg(
        long,
        value_name = "MS",
        env = "KODE_RETRY_BACKOFF_MS",
        hide_env_values = true,
        default_value_t = 1000
    )]
    pub retry_backoff_ms: u64,
    /// Time one push may take (fetching the order and all its downloads)
    #[arg(long, value_name = "SECS", env = "KODE_MESSAGE_TIMEOUT_SECS",
        hide_env_values = true, default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub message_timeout_secs: u64,
}

impl PipelineArgs {
    pub fn queue_options(&self) -> QueueOptions {
        QueueOptions {
            max_attempts: self.max_attempts,
            base_backoff: Duration::from_millis(self.retry_backoff_ms),
            ..QueueOptions::default()
        }
    }
}

pub async fn run(args: ServeArgs, global: &GlobalArgs) -> Result<(), CliError> {
    let settings = Settings::load(global)?;
    let push_secret = settings
        .value("PUSH_TOKEN")
        .ok_or_else(|| {
            CliError::Usage(
                "PUSH_TOKEN is not set: choose a long random secret, set it in the environment \
                 and give KODE the push URL with ?token=<secret>"
                    .into(),
            )
        })
        .and_then(|token| {
            PushSecret::new(Secret::new(token)).map_err(|e| CliError::invalid("PUSH_TOKEN", e))
        })?;
    let options = DeliveryOptions {
        max_attempts: args.notify_max_attempts,
        base_backoff: Duration::from_millis(args.notify_retry_backoff_ms),
        ..DeliveryOptions::default()
    };
    let notify = notify(args.notify_url.as_ref(), &settings, options)?;
    let events = match &args.notify_url {
        Some(url) => format!("events POSTed to {}", without_credentials(url)),
        None => "no events sent (set NOTIFY_URL)".to_owned(),
    };
    let api = settings.api_config().await?;
    let sweep_policy =
        kode::config::sweep_policy_from_env().map_err(|e| CliError::Usage(e.to_string()))?;
    let kode_url = api.api_url.to_string();
    let pipeline_args = args.pipeline;
    let pipeline = Pipeline::start(PipelineConfig {
        data_dir: pipeline_args.data_dir.clone(),
        listen: args.listen,
        push_secret,
        api,
        download_concurrency: usize::from(pipeline_args.download_concurrency),
        workers: usize::from(pipeline_args.workers),
        queue: pipeline_args.queue_options(),
        message_timeout: Duration::from_secs(pipeline_args.message_timeout_secs),
        failed: FailedPolicy {
            max_attempts: settings.failed_max_attempts()?,
            retry_parked: false,
        },
        sweep_interval: Some(args.sweep_interval).filter(|i| !i.is_zero()),
        sweep_policy,
        notify,
    })
    .await?;

    eprintln!(
        "kode serve: receiving pushes at {url} (give KODE {url}?token=<PUSH_TOKEN>), \
         health at http://{addr}/healthz; KODE API {kode_url}; data in {dir}; \
         {workers} workers; {sweep}; {events}. Ctrl-C stops.",
        url = pipeline.push_url(),
        addr = pipeline.addr(),
        dir = pipeline.data_dir().display(),
        workers = pipeline_args.workers,
        sweep = if args.sweep_interval.is_zero() {
            "sweep off".to_owned()
        } else {
            format!("open orders swept every {}s", args.sweep_interval.as_secs())
        },
    );
    let signal = shutdown_signal()
        .await
        .map_err(|e| CliError::Other(anyhow::anyhow!("cannot wait for signals: {e}")))?;
    info!(
        action = "shutdown",
        signal, "stopping: no new pushes, finishing in-flight work"
    );
    let stopped = pipeline.shutdown(SHUTDOWN_GRACE).await;
    eprintln!(
        "kode serve: stopped ({signal}); {} unfinished push(es) put back in the queue",
        stopped.released
    );
    Ok(())
}

/// Events go to `--notify-url` signed with NOTIFY_SECRET; one without the
/// other is a mistake worth stopping for.
fn notify(
    url: Option<&url::Url>,
    settings: &Settings,
    options: DeliveryOptions,
) -> Result<Notify, CliError> {
    let secret = settings.value("NOTIFY_SECRET");
    match (url, secret) {
        (None, None) => Ok(Notify::Off),
        (None, Some(_)) => Err(CliError::Usage(
            "NOTIFY_SECRET is set but not NOTIFY_URL (--notify-url): where should events go?"
                .into(),
        )),
        (Some(_), None) => Err(CliError::Usage(
            "--notify-url needs NOTIFY_SECRET (whsec_ + base64 of at least 24 random bytes, \
             e.g. whsec_$(openssl rand -base64 32)) to sign the events"
                .into(),
        )),
        (Some(url), Some(secret)) => {
            if !matches!(url.scheme(), "http" | "https") {
                return Err(CliError::invalid("--notify-url", "must be an http(s) URL"));
            }
            let secret =
                NotifySecret::parse(&secret).map_err(|e| CliError::invalid("NOTIFY_SECRET", e))?;
            Ok(Notify::Webhook {
                url: url.clone(),
                secret,
                options,
            })
        }
    }
}

/// The URL as it may be shown: no user, password, query or fragment.
fn without_credentials(url: &url::Url) -> String {
    format!(
        "{}://{}{}",
        url.scheme(),
        url.host_str().unwrap_or(""),
        url.port().map(|p| format!(":{p}")).unwrap_or_default()
    ) + url.path()
}

/// Waits for SIGINT or SIGTERM; returns which.
async fn shutdown_signal() -> std::io::Result<&'static str> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.map(|()| "SIGINT"),
            _ = term.recv() => Ok("SIGTERM"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.map(|()| "Ctrl-C")
    }
}
