//! The whole push pipeline in one process, shared by `kode serve` and
//! `kode demo`: the webhook's [`Intake`] behind an HTTP listener, the
//! processor's [`Processor`] fed by workers, and the embedded adapters
//! (SQLite queue and ledger, files on disk) under one data directory.
//!
//! Nothing here decides what a push means: that is the same `kode` code the
//! Lambdas run.

mod http;
mod lock;
mod sweeper;
mod worker;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use kode::announce::{Announcer, NotifySecret, WebhookAnnouncer, WebhookSender};
use kode::api::{ApiConfig, ApiError, KodeClient};
use kode::intake::{Intake, PushSecret};
use kode::process::{Announcing, Processor};
use kode::store::local::{
    DeliveryOptions, DiskBlobs, QueueOptions, SqliteDeliveries, SqliteLedger, SqliteQueue,
};
use kode::store::StoreError;
use kode::sync::FailedPolicy;
use kode::sync::SweepPolicy;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use self::lock::DataDirLock;
use self::worker::Worker;

/// Everything the local pipeline needs.
pub struct PipelineConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub push_secret: PushSecret,
    pub api: ApiConfig,
    pub download_concurrency: usize,
    /// Queue consumers; each works on one order (message group) at a time.
    pub workers: usize,
    pub queue: QueueOptions,
    /// What one queue message may take before it counts as failed.
    pub message_timeout: Duration,
    /// When FAILED assets are tried again.
    pub failed: FailedPolicy,
    /// How often open orders are swept (`None`: never).
    pub sweep_interval: Option<Duration>,
    pub sweep_policy: SweepPolicy,
    pub notify: Notify,
}

/// Where the downstream events go.
pub enum Notify {
    Off,
    /// Signed POSTs to a receiver, through the delivery queue.
    Webhook {
        url: url::Url,
        secret: NotifySecret,
        options: DeliveryOptions,
    },
    /// To an announcer of the caller's (the demo shows the events).
    To(Arc<dyn Announcer>),
}

/// Why the pipeline could not start.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// One line for the user: which directory, and who holds it.
    #[error(
        "the data directory {} is in use by another `kode serve`{}; stop it or choose another --data-dir",
        data_dir.display(),
        pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    InUse { data_dir: PathBuf, pid: Option<u32> },
    #[error("cannot lock {path}: {source}")]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the local storage: {0}")]
    Store(#[from] StoreError),
    #[error("invalid KODE settings: {0}")]
    Kode(#[from] ApiError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot set up event delivery: {0}")]
    Notify(String),
}

impl PipelineError {
    pub fn is_retryable(&self) -> bool {
        match self {
            PipelineError::Store(e) => e.is_retryable(),
            PipelineError::Kode(e) => e.is_retryable(),
            // The port may be freed by whoever holds it.
            PipelineError::Listen { .. } => true,
            // Not until someone stops the other instance: trying again
            // changes nothing by itself.
            PipelineError::InUse { .. } => false,
            PipelineError::DataDir { .. }
            | PipelineError::Lock { .. }
            | PipelineError::Notify(_) => false,
        }
    }
}

/// The ledger and the files of a data directory: what the pipeline writes,
/// and what `kode sync` and `kode order get --data-dir` open.
pub struct LocalStore {
    pub ledger: SqliteLedger,
    pub blobs: DiskBlobs,
}

impl LocalStore {
    pub const LEDGER_FILE: &'static str = "ledger.sqlite";

    /// Creates the data directory if needed.
    pub async fn open(data_dir: &Path) -> Result<LocalStore, PipelineError> {
        create_data_dir(data_dir)?;
        Ok(LocalStore {
            ledger: SqliteLedger::open(data_dir.join(Self::LEDGER_FILE)).await?,
            blobs: DiskBlobs::new(data_dir),
        })
    }
}

fn create_data_dir(data_dir: &Path) -> Result<(), PipelineError> {
    std::fs::create_dir_all(data_dir).map_err(|source| PipelineError::DataDir {
        path: data_dir.to_owned(),
        source,
    })
}

/// A running pipeline. [`Pipeline::shutdown`] stops it in order; if the
/// process dies instead, the next start requeues what was in flight.
pub struct Pipeline {
    /// Released last, when the pipeline is dropped after its shutdown.
    _lock: DataDirLock,
    addr: SocketAddr,
    data_dir: PathBuf,
    queue: SqliteQueue,
    ledger: SqliteLedger,
    blobs: DiskBlobs,
    stop_http: oneshot::Sender<()>,
    http: JoinHandle<()>,
    stop_claiming: watch::Sender<bool>,
    abort: watch::Sender<bool>,
    /// Each worker ends telling whether it had to release a message.
    workers: Vec<JoinHandle<bool>>,
    sweeper: Option<JoinHandle<()>>,
    /// The webhook sender, if events are posted.
    sender: Option<(watch::Sender<bool>, JoinHandle<()>)>,
}

/// What a shutdown did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    /// In-flight messages that did not finish within the grace period and
    /// went back to the queue.
    pub released: usize,
}

impl Pipeline {
    /// Locks the data directory, opens the stores, requeues what a previous
    /// run left in flight, binds the listener and starts the workers.
    pub async fn start(config: PipelineConfig) -> Result<Pipeline, PipelineError> {
        let data_dir = config.data_dir;
        create_data_dir(&data_dir)?;
        let lock = DataDirLock::acquire(&data_dir)?;
        let LocalStore { ledger, blobs } = LocalStore::open(&data_dir).await?;
        let queue = SqliteQueue::open(data_dir.join("queue.sqlite"), config.queue).await?;
        let requeued = queue.release_in_flight().await?;
        if requeued > 0 {
            warn!(
                action = "requeued_in_flight",
                count = requeued,
                "messages left in flight by an earlier run are queued again"
            );
        }

        let kode = KodeClient::new(config.api)?;
        let mut processor = Processor::new(
            Arc::new(kode),
            Arc::new(blobs.clone()),
            Arc::new(ledger.clone()),
            config.download_concurrency.max(1),
        )
        .with_failed_policy(config.failed)
        .with_sweep_policy(config.sweep_policy);
        let mut sender = None;
        match config.notify {
            Notify::Off => {}
            Notify::To(announcer) => {
                processor = processor.with_announcing(Announcing {
                    announcer,
                    bucket: None,
                });
            }
            Notify::Webhook {
                url,
                secret,
                options,
            } => {
                let deliveries =
                    SqliteDeliveries::open(data_dir.join(SqliteDeliveries::FILE), options).await?;
                processor = processor.with_announcing(Announcing {
                    announcer: Arc::new(WebhookAnnouncer::new(deliveries.clone())),
                    bucket: None,
                });
                let webhook = WebhookSender::new(deliveries, url, secret)
                    .map_err(|e| PipelineError::Notify(e.to_string()))?;
                let (stop, stopped) = watch::channel(false);
                sender = Some((stop, tokio::spawn(webhook.run(stopped))));
            }
        }
        let processor = Arc::new(processor);
        let intake = Arc::new(Intake::new(Arc::new(queue.clone()), config.push_secret));

        let listen_error = |source| PipelineError::Listen {
            addr: config.listen,
            source,
        };
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(listen_error)?;
        let addr = listener.local_addr().map_err(listen_error)?;
        let (stop_http, stopped) = oneshot::channel::<()>();
        let http = tokio::spawn(http::serve(listener, intake, stopped));

        let (stop_claiming, claiming_rx) = watch::channel(false);
        let (abort, abort_rx) = watch::channel(false);
        let workers = (0..config.workers.max(1))
            .map(|number| {
                let worker = Worker {
                    number,
                    queue: queue.clone(),
                    processor: Arc::clone(&processor),
                    message_timeout: config.message_timeout,
                    stop_claiming: claiming_rx.clone(),
                    abort: abort_rx.clone(),
                };
                tokio::spawn(worker.run())
            })
            .collect();
        let sweeper = config.sweep_interval.map(|interval| {
            tokio::spawn(
                sweeper::Sweeper {
                    ledger: ledger.clone(),
                    queue: queue.clone(),
                    interval,
                    stop: claiming_rx.clone(),
                }
                .run(),
            )
        });
        info!(
            action = "pipeline_started",
            listen = %addr,
            dataDir = %data_dir.display(),
            "local pipeline started"
        );
        Ok(Pipeline {
            _lock: lock,
            addr,
            data_dir,
            queue,
            ledger,
            blobs,
            stop_http,
            http,
            stop_claiming,
            abort,
            workers,
            sweeper,
            sender,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL to register with KODE (without the secret).
    pub fn push_url(&self) -> String {
        format!("http://{}/push", self.addr)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn queue(&self) -> &SqliteQueue {
        &self.queue
    }

    pub fn ledger(&self) -> &SqliteLedger {
        &self.ledger
    }

    pub fn blobs(&self) -> &DiskBlobs {
        &self.blobs
    }

    /// Stops accepting pushes, lets in-flight messages finish within `grace`
    /// and puts the rest back at the head of their group.
    pub async fn shutdown(self, grace: Duration) -> Stopped {
        let deadline = tokio::time::Instant::now() + grace;
        // An error only means the server has already stopped.
        let _ = self.stop_http.send(());
        self.stop_claiming.send_replace(true);
        if let Some(sweeper) = self.sweeper {
            // A sweep only sends messages: it ends quickly once told to.
            let _ = sweeper.await;
        }

        let mut workers = join_all(self.workers);
        let ended = match tokio::time::timeout_at(deadline, &mut workers).await {
            Ok(ended) => ended,
            Err(_) => {
                self.abort.send_replace(true);
                workers.await
            }
        };
        let released = ended.into_iter().filter(|r| matches!(r, Ok(true))).count();
        // Deliveries not made stay queued for the next start.
        if let Some((stop, mut sender)) = self.sender {
            stop.send_replace(true);
            if tokio::time::timeout_at(deadline, &mut sender)
                .await
                .is_err()
            {
                sender.abort();
            }
        }
        // Pushes still being received get what is left of the grace period.
        let mut http = self.http;
        if tokio::time::timeout_at(deadline, &mut http).await.is_err() {
            http.abort();
        }
        info!(
            action = "pipeline_stopped",
            released, "local pipeline stopped"
        );
        Stopped { released }
    }
}
