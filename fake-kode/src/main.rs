//! `fake-kode [--listen 127.0.0.1:8099] [--sample]`: serves the fake KODE
//! API until Ctrl-C.

use std::net::SocketAddr;
use std::process::ExitCode;

use fake_kode::{samples, FakeKode};

const USAGE: &str = "usage: fake-kode [--listen ADDR] [--sample]\n\
  --listen ADDR  address to serve on (default 127.0.0.1:8099)\n\
  --sample       load the Meglerpakke sample order";

/// Id of the sample order, easy to type in a demo.
const SAMPLE_ORDER_ID: u64 = 2_345_678;

struct Args {
    listen: SocketAddr,
    sample: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        listen: SocketAddr::from(([127, 0, 0, 1], 8099)),
        sample: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--sample" => args.sample = true,
            "--listen" => {
                let value = it.next().ok_or("--listen needs an address")?;
                args.listen = value
                    .parse()
                    .map_err(|_| format!("--listen: not a socket address: {value}"))?;
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument: {other}")),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("fake-kode: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let fake = match FakeKode::start_on(args.listen).await {
        Ok(f) => f,
        Err(e) => {
            eprintln!("fake-kode: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let creds = fake.credentials();
    println!("fake KODE API serving at {}", fake.base_url());
    println!("  KODE_API_URL={}", fake.base_url());
    println!("  KODE_TOKEN_URL={}", fake.token_url());
    println!(
        "  client_id={} client_secret={}",
        creds.client_id, creds.client_secret
    );
    println!("  username={} password={}", creds.username, creds.password);
    if args.sample {
        fake.add_order(samples::meglerpakke_order(SAMPLE_ORDER_ID));
        println!("  sample order: {SAMPLE_ORDER_ID} (GET /kode/v1/orders/{SAMPLE_ORDER_ID})");
    }
    println!("Ctrl-C stops.");
    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("fake-kode: cannot wait for Ctrl-C: {e}");
    }
    fake.shutdown().await;
    ExitCode::SUCCESS
}
