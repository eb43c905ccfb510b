//! Running the built `kode` binary with a chosen environment, and looking
//! at what the fake KODE server saw.

use std::path::Path;
use std::process::Command;

use fake_kode::{Endpoint, FakeKode};
use serde_json::{json, Value};

const ALL_ENDPOINTS: [Endpoint; 6] = [
    Endpoint::Token,
    Endpoint::GetOrder,
    Endpoint::Products,
    Endpoint::Prices,
    Endpoint::CreateOrder,
    Endpoint::Asset,
];

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }

    pub fn assert_ok(&self) -> &Self {
        assert_eq!(self.code, 0, "stderr:\n{}", self.stderr);
        self
    }

    pub fn assert_usage_error(&self, names: &str) -> &Self {
        assert_eq!(
            self.code, 2,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        assert!(self.stdout.is_empty(), "{}", self.stdout);
        assert!(
            self.stderr.contains(names),
            "{names:?} not in:\n{}",
            self.stderr
        );
        self
    }
}

/// The environment a user of the fake would set.
pub fn fake_env(fake: &FakeKode) -> Vec<(String, String)> {
    let c = fake.credentials();
    [
        ("KODE_API_URL", fake.base_url()),
        ("KODE_CLIENT_ID", c.client_id),
        ("KODE_CLIENT_SECRET", c.client_secret),
        ("KODE_USERNAME", c.username),
        ("KODE_PASSWORD", c.password),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Runs `kode` with exactly `env` (nothing inherited, so no user config file
/// or variable leaks in) and checks that no secret of `env` is ever printed.
pub async fn kode_with(env: Vec<(String, String)>, args: &[&str]) -> Run {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let secrets: Vec<String> = env
        .iter()
        .filter(|(k, _)| k == "KODE_CLIENT_SECRET" || k == "KODE_PASSWORD")
        .map(|(_, v)| v.clone())
        .collect();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_kode"))
            .args(&args)
            .env_clear()
            .envs(env)
            .output()
            .expect("run kode")
    })
    .await
    .unwrap();
    let run = Run {
        code: output.status.code().expect("kode exited by signal"),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    };
    for secret in secrets {
        assert!(!run.stdout.contains(&secret), "secret on stdout");
        assert!(!run.stderr.contains(&secret), "secret on stderr");
    }
    for text in [&run.stdout, &run.stderr] {
        assert!(!text.contains("Bearer "), "token on output:\n{text}");
    }
    run
}

pub async fn kode(fake: &FakeKode, args: &[&str]) -> Run {
    kode_with(fake_env(fake), args).await
}

pub fn assert_no_requests(fake: &FakeKode) {
    for endpoint in ALL_ENDPOINTS {
        assert_eq!(fake.requests(endpoint), 0, "{endpoint:?} was called");
    }
}

/// What the fake serves, fetched without the `kode` crate.
pub async fn served(fake: &FakeKode, path: &str) -> Value {
    let c = fake.credentials();
    let http = reqwest::Client::new();
    let token: Value = http
        .post(fake.token_url())
        .form(&[
            ("grant_type", "password"),
            ("client_id", &c.client_id),
            ("client_secret", &c.client_secret),
            ("username", &c.username),
            ("password", &c.password),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    http.get(format!("{}{path}", fake.base_url()))
        .bearer_auth(token["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

pub fn write_file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

pub fn square_polygon() -> Value {
    json!({"type": "Polygon", "coordinates": [[[597210.0, 6643120.0], [597210.0, 6643420.0],
        [597610.0, 6643420.0], [597610.0, 6643120.0], [597210.0, 6643120.0]]]})
}
