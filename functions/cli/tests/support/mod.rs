//! Driving the built `kode` binary: child processes that are always killed
//! (a guard with `Drop`), polling with timeouts, and reading what landed in
//! a data directory.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use fake_kode::{AssetSpec, FakeKode, OrderSpec};
use kode::store::local::{QueueOptions, SqliteQueue};

pub const PUSH_TOKEN: &str = "test-push-secret-4f1c9a";
/// Generous: a loaded CI machine may be slow, and nothing here measures speed.
pub const PATIENCE: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(50);

pub fn kode() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kode"));
    // Only what the test sets: no config file, credentials or RUST_LOG of
    // the machine running the tests.
    command.env_clear();
    command
}

/// A running `kode serve`, killed when dropped.
pub struct Serve {
    child: Child,
    pub addr: SocketAddr,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Serve {
    /// Starts `kode serve` on a free loopback port against `fake`.
    pub fn start(data_dir: &Path, fake: &FakeKode, extra: &[&str]) -> Serve {
        Serve::start_with_env(data_dir, fake, extra, &[])
    }

    /// As [`Serve::start`], with more environment variables.
    pub fn start_with_env(
        data_dir: &Path,
        fake: &FakeKode,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Serve {
        let mut child = serve_command(data_dir, fake, extra)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .spawn()
            .expect("start kode serve");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (found, address) = mpsc::channel();
        let pipe = child.stderr.take().expect("piped stderr");
        let lines = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("kode serve: receiving pushes at http://") {
                    if let Some(addr) = rest.split('/').next().and_then(|a| a.parse().ok()) {
                        let _ = found.send(addr);
                    }
                }
                lines.lock().unwrap().push(line);
            }
        });
        let mut serve = Serve {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stderr,
        };
        let started = Instant::now();
        loop {
            if let Ok(addr) = address.recv_timeout(POLL) {
                serve.addr = addr;
                return serve;
            }
            if let Ok(Some(status)) = serve.child.try_wait() {
                panic!("kode serve exited with {status}:\n{}", serve.log());
            }
            assert!(
                started.elapsed() < PATIENCE,
                "kode serve did not start:\n{}",
                serve.log()
            );
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn push_url(&self) -> String {
        format!("http://{}/push?token={PUSH_TOKEN}", self.addr)
    }

    /// Everything it wrote to stderr so far.
    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// `kill -9`.
    pub fn kill(mut self) {
        self.child.kill().expect("kill kode serve");
        self.child.wait().expect("reap kode serve");
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(mut self) -> (ExitStatus, String) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for kode serve") {
                // Let the reader thread take the last lines.
                std::thread::sleep(POLL);
                return (status, self.log());
            }
            assert!(
                started.elapsed() < PATIENCE,
                "kode serve did not stop:\n{}",
                self.log()
            );
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a user of the fake KODE sets: its URL and credentials.
pub fn fake_env(fake: &FakeKode) -> Vec<(&'static str, String)> {
    let c = fake.credentials();
    vec![
        ("KODE_API_URL", fake.base_url()),
        ("KODE_CLIENT_ID", c.client_id),
        ("KODE_CLIENT_SECRET", c.client_secret),
        ("KODE_USERNAME", c.username),
        ("KODE_PASSWORD", c.password),
    ]
}

/// `kode serve` on a free loopback port against `fake`, stderr piped.
pub fn serve_command(data_dir: &Path, fake: &FakeKode, extra: &[&str]) -> Command {
    let mut command = kode();
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(extra)
        .env("HOME", data_dir)
        .envs(fake_env(fake))
        .env("PUSH_TOKEN", PUSH_TOKEN)
        .stdin(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// Runs a `kode` command to its end (killed if it overruns).
pub fn run_kode(args: &[&str], cwd: &Path) -> Output {
    run_kode_env(args, cwd, Vec::new())
}

/// [`run_kode`] with the credentials and API address of `fake`.
pub fn run_kode_against(fake: &FakeKode, args: &[&str], cwd: &Path) -> Output {
    run_kode_env(args, cwd, fake_env(fake))
}

/// As [`run_kode`], with environment variables.
pub fn run_kode_env(args: &[&str], cwd: &Path, env: Vec<(&str, String)>) -> Output {
    let mut command = kode();
    command
        .args(args)
        .envs(env)
        .env("HOME", cwd)
        .current_dir(cwd);
    run_to_end(command)
}

/// Runs a prepared `kode` command to its end, capturing its output (killed
/// if it overruns).
pub fn run_to_end(mut command: Command) -> Output {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kode");
    let pid = child.id();
    let (done, finished) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let output = child.wait_with_output();
        let _ = done.send(());
        output
    });
    if finished.recv_timeout(PATIENCE).is_err() {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        panic!("{command:?} did not finish");
    }
    waiter.join().expect("waiter thread").expect("kode output")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Polls `check` until it yields a value; panics with `what` after [`PATIENCE`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(started.elapsed() < PATIENCE, "timed out waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// Pushes still queued or in flight in the data dir's queue.
pub async fn backlog(data_dir: &Path) -> u64 {
    let queue = SqliteQueue::open(data_dir.join("queue.sqlite"), QueueOptions::default())
        .await
        .expect("open queue");
    queue.backlog().await.expect("read backlog")
}

/// Waits until every push sent so far has been processed.
pub async fn drained(data_dir: &Path) {
    eventually("the queue to drain", || async {
        (backlog(data_dir).await == 0).then_some(())
    })
    .await;
}

pub fn assets_of(order: &OrderSpec) -> Vec<AssetSpec> {
    order
        .sub_orders
        .iter()
        .flat_map(|s| {
            s.assets
                .iter()
                .chain(s.lines.iter().flat_map(|l| l.assets.iter()))
        })
        .cloned()
        .collect()
}

/// The files stored for an asset: `<data>/assets/orders/<order>/<asset>/*`.
pub fn files_of(data_dir: &Path, order_id: u64, asset_id: &str) -> Vec<PathBuf> {
    let dir = data_dir
        .join("assets/orders")
        .join(order_id.to_string())
        .join(asset_id);
    match std::fs::read_dir(&dir) {
        Ok(entries) => entries.map(|e| e.expect("dir entry").path()).collect(),
        Err(_) => Vec::new(),
    }
}

/// Asserts the asset is on disk once, under its file name, byte for byte.
pub fn assert_stored(data_dir: &Path, order_id: u64, asset: &AssetSpec) {
    let files = files_of(data_dir, order_id, &asset.id);
    assert_eq!(
        files.len(),
        1,
        "asset {} ({}): {files:?}",
        asset.id,
        asset.filename
    );
    let name = files[0].file_name().and_then(|n| n.to_str());
    assert_eq!(name, Some(asset.filename.as_str()));
    let bytes = std::fs::read(&files[0]).expect("read stored file");
    assert!(
        bytes == asset.content.to_bytes(),
        "{} differs from the KODE file",
        files[0].display()
    );
}

/// Whether every asset of the order is on disk.
pub fn all_stored(data_dir: &Path, order_id: u64, assets: &[AssetSpec]) -> bool {
    assets
        .iter()
        .all(|a| files_of(data_dir, order_id, &a.id).len() == 1)
}

pub fn order_push(order: &OrderSpec, status: &str) -> serde_json::Value {
    serde_json::json!({
        "orderCollectionId": order.id,
        "reference": order.reference,
        "status": status,
    })
}
