//! The built `kode` binary against the fake KODE server, as a user runs it.

use std::path::Path;
use std::process::Command;

use fake_kode::{samples, Endpoint, FakeKode};
use serde_json::{json, Value};

const ALL_ENDPOINTS: [Endpoint; 6] = [
    Endpoint::Token,
    Endpoint::GetOrder,
    Endpoint::Products,
    Endpoint::Prices,
    Endpoint::CreateOrder,
    Endpoint::Asset,
];

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }

    fn assert_ok(&self) -> &Self {
        assert_eq!(self.code, 0, "stderr:\n{}", self.stderr);
        self
    }

    fn assert_usage_error(&self, names: &str) -> &Self {
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
fn fake_env(fake: &FakeKode) -> Vec<(String, String)> {
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
async fn kode_with(env: Vec<(String, String)>, args: &[&str]) -> Run {
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

async fn kode(fake: &FakeKode, args: &[&str]) -> Run {
    kode_with(fake_env(fake), args).await
}

fn assert_no_requests(fake: &FakeKode) {
    for endpoint in ALL_ENDPOINTS {
        assert_eq!(fake.requests(endpoint), 0, "{endpoint:?} was called");
    }
}

/// What the fake serves, fetched without the `kode` crate.
async fn served(fake: &FakeKode, path: &str) -> Value {
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

fn write_file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn square_polygon() -> Value {
    json!({"type": "Polygon", "coordinates": [[[597210.0, 6643120.0], [597210.0, 6643420.0],
        [597610.0, 6643420.0], [597610.0, 6643120.0], [597210.0, 6643120.0]]]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_check_shows_scopes_and_expiry_but_no_token() {
    let fake = FakeKode::start().await;
    let run = kode(&fake, &["auth", "check"]).await;
    run.assert_ok();
    assert!(run.stdout.contains("Scopes:"), "{}", run.stdout);
    assert!(run.stdout.contains("Expires in:"), "{}", run.stdout);
    assert_eq!(fake.grants("password"), 1);

    let run = kode(&fake, &["auth", "check", "--json"]).await;
    let body = run.assert_ok().json();
    assert!(body["scopes"].is_array());
    assert!(body["expiresInSeconds"].as_u64().unwrap() > 3000);
    assert_eq!(
        body.as_object().unwrap().len(),
        2,
        "only scopes and expiry: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_a_kode_error_with_exit_code_1() {
    let fake = FakeKode::start().await;
    let mut env = fake_env(&fake);
    env.retain(|(k, _)| k != "KODE_PASSWORD");
    env.push(("KODE_PASSWORD".into(), "not-the-password".into()));
    let run = kode_with(env, &["auth", "check"]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.starts_with("error: "), "{}", run.stderr);
    assert!(run.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_credentials_are_named_before_any_request() {
    let fake = FakeKode::start().await;
    let env = vec![("KODE_API_URL".to_owned(), fake.base_url())];
    let run = kode_with(env, &["products", "--municipality", "0301"]).await;
    run.assert_usage_error("KODE_CLIENT_ID is not set");
    assert_no_requests(&fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn products_table_shows_every_product_with_price_incl_vat() {
    let fake = FakeKode::start().await;
    let run = kode(&fake, &["products", "--municipality", "0301"]).await;
    run.assert_ok();
    let lines: Vec<&str> = run.stdout.lines().collect();
    let header: Vec<&str> = lines[0].split("  ").filter(|c| !c.is_empty()).collect();
    assert_eq!(
        header.iter().map(|c| c.trim()).collect::<Vec<_>>(),
        [
            "CODE",
            "NAME",
            "TYPE",
            "DELIVERY",
            "PRICE INCL. VAT",
            "STATUS",
            "CHILDREN"
        ]
    );
    let catalogue = samples::products("0301");
    let catalogue = catalogue.as_array().unwrap();
    assert_eq!(lines.len(), catalogue.len() + 1);
    for product in catalogue {
        let code = product["code"].as_str().unwrap();
        let row = lines
            .iter()
            .find(|l| l.starts_with(code))
            .unwrap_or_else(|| panic!("{code} missing:\n{}", run.stdout));
        let cells: Vec<&str> = row.split_whitespace().collect();
        let price = format!("{:.2}", product["price"]["salesPriceVat"].as_f64().unwrap());
        assert!(cells.contains(&price.as_str()), "{row}");
        assert!(
            cells.contains(&product["type"]["code"].as_str().unwrap()),
            "{row}"
        );
        let children = product["children"].as_array().unwrap().len().to_string();
        assert_eq!(cells.last(), Some(&children.as_str()), "{row}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn products_json_is_kodes_response_as_served() {
    let fake = FakeKode::start().await;
    let run = kode(&fake, &["products", "--municipality", "0301", "--json"]).await;
    assert_eq!(run.assert_ok().json(), samples::products("0301"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn municipality_without_leading_zero_is_rejected_before_any_request() {
    let fake = FakeKode::start().await;
    let run = kode(&fake, &["products", "--municipality", "301"]).await;
    run.assert_usage_error("--municipality");
    assert!(run.stderr.contains("four digits"), "{}", run.stderr);
    assert_no_requests(&fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn price_sends_the_documented_body_and_shows_the_total() {
    let fake = FakeKode::start().await;
    let run = kode(
        &fake,
        &[
            "price",
            "cadastre",
            "--cadastre",
            "0301-207-45-0-0",
            "--product",
            "WI03010033",
        ],
    )
    .await;
    run.assert_ok();
    assert_eq!(
        fake.price_requests(),
        vec![(
            "cadastre".to_owned(),
            json!({"orderData": {"cadastre": "0301-207-45-0-0"}, "products": [{"code": "WI03010033"}]})
        )]
    );
    let total = run.stdout.lines().find(|l| l.starts_with("TOTAL")).unwrap();
    assert_eq!(
        total.split_whitespace().collect::<Vec<_>>(),
        ["TOTAL", "1480.00", "1850.00"]
    );

    let geojson = tempfile::tempdir().unwrap();
    let file = write_file(
        geojson.path(),
        "area.geojson",
        &square_polygon().to_string(),
    );
    let run = kode(
        &fake,
        &[
            "price",
            "map",
            "--geojson",
            &file,
            "--product",
            "WI03016101",
            "--product-data",
            r#"{"format":"UTM"}"#,
            "--json",
        ],
    )
    .await;
    let body = run.assert_ok().json();
    assert_eq!(body["products"][0]["code"], "WI03016101");
    assert_eq!(
        fake.price_requests()[1],
        (
            "map".to_owned(),
            json!({"orderData": {"geometry": square_polygon(), "spatialReference": "25833"},
                   "products": [{"code": "WI03016101", "data": {"format": "UTM"}}]})
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_create_sends_the_documented_body_and_the_order_can_be_fetched() {
    let fake = FakeKode::start().await;
    let run = kode(
        &fake,
        &[
            "order",
            "create",
            "cadastre",
            "--cadastre",
            "0301-207-45-0-0",
            "--address",
            "Storgata 12, 0155 Oslo",
            "--product",
            "WI03010033",
            "--reference",
            "OPPDRAG-2024-0042",
            "--technical-reference",
            "acme-7f3c2a",
            "--delivery-name",
            "Kari Megler",
            "--delivery-company",
            "Eiendomsmegler Acme AS",
            "--delivery-email",
            "kari@acme.example",
            "--delivery-phone",
            "+4791234567",
            "--delivery-address",
            "Postboks 12",
            "--delivery-postal-code",
            "0101",
        ],
    )
    .await;
    run.assert_ok();
    // kode-api.md §5.1, cadastre example.
    let expected = json!({
      "deliveryInformation": { "name": "Kari Megler", "companyName": "Eiendomsmegler Acme AS",
        "email": "kari@acme.example", "phone": "+4791234567",
        "address": "Postboks 12", "postalCode": "0101" },
      "orderData": { "address": "Storgata 12, 0155 Oslo", "cadastre": "0301-207-45-0-0" },
      "products": [ { "code": "WI03010033" } ],
      "reference": "OPPDRAG-2024-0042",
      "technicalReference": "acme-7f3c2a"
    });
    assert_eq!(
        fake.created_orders(),
        vec![("cadastre".to_owned(), expected)]
    );
    let first = run.stdout.lines().next().unwrap();
    let id = first
        .strip_prefix("Created order ")
        .and_then(|r| r.strip_suffix('.'))
        .unwrap_or_else(|| panic!("{}", run.stdout));
    assert!(run.stdout.contains("WI03010033"), "{}", run.stdout);

    let run = kode(&fake, &["order", "get", id, "--json"]).await;
    assert_eq!(
        run.assert_ok().json(),
        served(&fake, &format!("/kode/v1/orders/{id}")).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_create_share_sends_numbers() {
    let fake = FakeKode::start().await;
    let run = kode(
        &fake,
        &[
            "order",
            "create",
            "share",
            "--organization-number",
            "948677202",
            "--share-number",
            "57",
            "--product",
            "WI03010900",
            "--reference",
            "OPPDRAG-2024-0043",
            "--json",
        ],
    )
    .await;
    let created = run.assert_ok().json();
    assert!(created["id"].as_u64().is_some(), "{created}");
    assert_eq!(
        fake.created_orders()[0].1["orderData"],
        json!({"organizationNumber": 948677202, "shareNumber": 57})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_get_shows_status_lines_and_assets_with_status() {
    let fake = FakeKode::start().await;
    fake.add_order(samples::meglerpakke_order(7001));
    let served_order = served(&fake, "/kode/v1/orders/7001").await;
    let deleted = served_order["orders"][0]["orderLines"][1]["assets"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    fake.set_asset_status(&deleted, "DELETED");

    let run = kode(&fake, &["order", "get", "7001"]).await;
    run.assert_ok();
    assert!(
        run.stdout.starts_with("Order 7001  status NEW\n"),
        "{}",
        run.stdout
    );
    for sub in served_order["orders"].as_array().unwrap() {
        let sub_line = format!(
            "Sub-order {}  {}",
            sub["id"],
            sub["supplierName"].as_str().unwrap()
        );
        assert!(run.stdout.contains(&sub_line), "{}", run.stdout);
        for line in sub["orderLines"].as_array().unwrap() {
            let row = run
                .stdout
                .lines()
                .find(|l| l.trim_start().starts_with(&line["id"].to_string()))
                .unwrap_or_else(|| panic!("line {} missing:\n{}", line["id"], run.stdout));
            assert!(row.contains(line["product"].as_str().unwrap()), "{row}");
        }
        let assets = sub["assets"].as_array().unwrap().iter().chain(
            sub["orderLines"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|l| l["assets"].as_array().unwrap()),
        );
        for asset in assets {
            let id = asset["id"].as_str().unwrap();
            let row = run
                .stdout
                .lines()
                .find(|l| l.trim_start().starts_with(id))
                .unwrap_or_else(|| panic!("asset {id} missing:\n{}", run.stdout));
            let status = if id == deleted { "DELETED" } else { "OK" };
            assert_eq!(row.split_whitespace().nth(1), Some(status), "{row}");
            assert!(row.ends_with(asset["filename"].as_str().unwrap()), "{row}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_order_shows_kodes_status_and_message() {
    let fake = FakeKode::start().await;
    let run = kode(&fake, &["order", "get", "999"]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("404"), "{}", run.stderr);
    assert!(run.stderr.contains("Order 999 not found"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kode_rejection_of_an_order_shows_its_message() {
    let fake = FakeKode::start().await;
    // A valid body for a product the fake does not sell.
    let run = kode(
        &fake,
        &[
            "order",
            "create",
            "cadastre",
            "--cadastre",
            "0301-207-45-0-0",
            "--product",
            "NOSUCHPRODUCT",
            "--reference",
            "R",
        ],
    )
    .await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("400"), "{}", run.stderr);
    assert!(
        run.stderr.contains("Unknown product NOSUCHPRODUCT"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_prints_the_body_and_sends_nothing() {
    let fake = FakeKode::start().await;
    let dir = tempfile::tempdir().unwrap();
    let feature = json!({"type": "FeatureCollection", "crs": {"type": "name",
        "properties": {"name": "urn:ogc:def:crs:EPSG::25832"}},
        "features": [{"type": "Feature", "properties": {}, "geometry": square_polygon()}]});
    let file = write_file(dir.path(), "area.geojson", &feature.to_string());
    let cases: Vec<(Vec<&str>, Value)> = vec![
        (
            vec![
                "order",
                "create",
                "share",
                "--organization-number",
                "948677202",
                "--share-number",
                "57",
                "--product",
                "WI03010150",
                "--reference",
                "OPPDRAG-2024-0043",
            ],
            json!({"orderData": {"organizationNumber": 948677202, "shareNumber": 57},
                   "products": [{"code": "WI03010150"}], "reference": "OPPDRAG-2024-0043"}),
        ),
        (
            vec![
                "order",
                "create",
                "map",
                "--geojson",
                &file,
                "--product",
                "WI03016101",
                "--product-data",
                r#"WI03016101={"system":"UTM"}"#,
                "--reference",
                "R",
            ],
            json!({"orderData": {"geometry": square_polygon(), "spatialReference": "25832"},
                   "products": [{"code": "WI03016101", "data": {"system": "UTM"}}], "reference": "R"}),
        ),
        (
            vec![
                "price",
                "cadastre",
                "--cadastre",
                "0301-207-45-0-0",
                "--product",
                "A",
                "--product",
                "B",
            ],
            json!({"orderData": {"cadastre": "0301-207-45-0-0"},
                   "products": [{"code": "A"}, {"code": "B"}]}),
        ),
    ];
    for (mut args, expected) in cases {
        args.push("--dry-run");
        let run = kode(&fake, &args).await;
        assert_eq!(run.assert_ok().json(), expected, "{args:?}");
        // Also with no configuration at all: nothing is needed to print a body.
        let run = kode_with(Vec::new(), &args).await;
        assert_eq!(run.assert_ok().json(), expected, "{args:?}");
    }
    assert_no_requests(&fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_input_names_the_flag_and_sends_nothing() {
    let fake = FakeKode::start().await;
    let dir = tempfile::tempdir().unwrap();
    let line = json!({"type": "LineString", "coordinates": [[597210.0, 6643120.0], [597610.0, 6643420.0]]});
    let line_file = write_file(dir.path(), "line.geojson", &line.to_string());
    let open_file = write_file(
        dir.path(),
        "open.geojson",
        r#"{"type":"Polygon","coordinates":[[[597210,6643120],[597210,6643420],[597610,6643420],[597610,6643120]]]}"#,
    );
    let create = ["order", "create"];
    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        (
            vec![
                "cadastre",
                "--cadastre",
                "0301-207-45",
                "--product",
                "P",
                "--reference",
                "R",
            ],
            "--cadastre",
            "not 5",
        ),
        (
            vec![
                "cadastre",
                "--cadastre",
                "301-207-45-0-0",
                "--product",
                "P",
                "--reference",
                "R",
            ],
            "--cadastre",
            "four digits",
        ),
        (
            vec![
                "share",
                "--organization-number",
                "948677202",
                "--share-number",
                "fifty-seven",
                "--product",
                "P",
                "--reference",
                "R",
            ],
            "--share-number",
            "whole number",
        ),
        (
            vec![
                "share",
                "--organization-number",
                "948677203",
                "--share-number",
                "57",
                "--product",
                "P",
                "--reference",
                "R",
            ],
            "--organization-number",
            "check digit",
        ),
        (
            vec![
                "map",
                "--geojson",
                &line_file,
                "--product",
                "P",
                "--reference",
                "R",
            ],
            "--geojson",
            "LineString",
        ),
        (
            vec![
                "map",
                "--geojson",
                &open_file,
                "--product",
                "P",
                "--reference",
                "R",
            ],
            "--geojson",
            "not closed",
        ),
        (
            vec![
                "map",
                "--geojson",
                &line_file,
                "--spatial-reference",
                "4326",
                "--product",
                "P",
                "--reference",
                "R",
            ],
            "--spatial-reference",
            "25833",
        ),
        (
            vec![
                "cadastre",
                "--cadastre",
                "0301-207-45-0-0",
                "--product",
                "P",
                "--reference",
                " ",
            ],
            "--reference",
            "must not be empty",
        ),
        (
            vec![
                "cadastre",
                "--cadastre",
                "0301-207-45-0-0",
                "--product",
                "P",
            ],
            "--reference",
            "required",
        ),
        (
            vec![
                "cadastre",
                "--cadastre",
                "0301-207-45-0-0",
                "--product",
                "P",
                "--product",
                "Q",
                "--product-data",
                r#"{"system":"UTM"}"#,
                "--reference",
                "R",
            ],
            "--product-data",
            "CODE=JSON",
        ),
        (
            vec![
                "cadastre",
                "--cadastre",
                "0301-207-45-0-0",
                "--product",
                "P",
                "--delivery-email",
                "kari.acme.example",
                "--reference",
                "R",
            ],
            "--delivery-email",
            "@",
        ),
    ];
    for (rest, flag, reason) in cases {
        let args: Vec<&str> = create.iter().copied().chain(rest).collect();
        let run = kode(&fake, &args).await;
        run.assert_usage_error(flag);
        assert!(run.stderr.contains(reason), "{args:?}: {}", run.stderr);
    }
    assert_no_requests(&fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_has_examples_and_never_shows_values_from_the_environment() {
    let env: Vec<(String, String)> = [
        ("KODE_CLIENT_ID", "client-id-from-env"),
        ("KODE_CLIENT_SECRET", "client-secret-from-env"),
        ("KODE_USERNAME", "username-from-env"),
        ("KODE_PASSWORD", "password-from-env"),
        ("KODE_API_URL", "https://api-url-from-env.example"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let commands: [&[&str]; 14] = [
        &["--help"],
        &["auth", "--help"],
        &["auth", "check", "--help"],
        &["price", "--help"],
        &["order", "--help"],
        &["order", "create", "--help"],
        &["order", "create", "map", "--help"],
        &["products", "--help"],
        &["price", "cadastre", "--help"],
        &["price", "share", "--help"],
        &["price", "map", "--help"],
        &["order", "create", "cadastre", "--help"],
        &["order", "create", "share", "--help"],
        &["order", "get", "--help"],
    ];
    for args in commands {
        let run = kode_with(env.clone(), args).await;
        run.assert_ok();
        assert!(run.stdout.contains("Example"), "{args:?} has no example");
        for (_, value) in &env {
            assert!(
                !run.stdout.contains(value.as_str()),
                "{args:?} shows {value}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_come_from_flags_then_environment_then_config_file() {
    let fake = FakeKode::start().await;
    let c = fake.credentials();
    let dir = tempfile::tempdir().unwrap();
    let config = write_file(
        dir.path(),
        "config.env",
        &format!(
            "# kode config\nKODE_API_URL=http://127.0.0.1:9/wrong\nKODE_CLIENT_ID={}\n\
             KODE_CLIENT_SECRET=\"{}\"\nKODE_USERNAME={}\nKODE_PASSWORD={}\n",
            c.client_id, c.client_secret, c.username, c.password
        ),
    );
    let products = [
        "products",
        "--municipality",
        "9999",
        "--json",
        "--config",
        &config,
    ];
    // The file alone: its URL is wrong (nothing listens on port 9).
    let run = kode_with(Vec::new(), &[&products[..], &["--timeout", "2"]].concat()).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    // The environment beats the file.
    let env = vec![("KODE_API_URL".to_owned(), fake.base_url())];
    let run = kode_with(env, &products).await;
    assert_eq!(run.assert_ok().json(), samples::products("9999"));
    // A flag beats the environment.
    let env = vec![(
        "KODE_API_URL".to_owned(),
        "http://127.0.0.1:9/wrong".to_owned(),
    )];
    let flag = ["--kode-api-url", &fake.base_url()];
    let run = kode_with(env, &[&products[..], &flag[..]].concat()).await;
    assert_eq!(run.assert_ok().json(), samples::products("9999"));
    // KODE_CONFIG names the file too; an unknown key is reported with its line.
    let bad = write_file(dir.path(), "bad.env", "KODE_API_URL=x\nKODE_PASWORD=oops\n");
    let env = vec![("KODE_CONFIG".to_owned(), bad)];
    let run = kode_with(env, &["products", "--municipality", "9999"]).await;
    run.assert_usage_error("line 2: unknown key \"KODE_PASWORD\"");
    assert_eq!(fake.grants("password"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kode_outage_exits_1_with_the_status() {
    let fake = FakeKode::start().await;
    fake.set_down(true);
    let run = kode(&fake, &["--timeout", "3", "order", "get", "1"]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("503"), "{}", run.stderr);
    assert!(run.stderr.contains("try again"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_create_warns_that_the_order_may_exist_instead_of_inviting_a_retry() {
    let fake = FakeKode::start().await;
    fake.fail_next(Endpoint::CreateOrder, 1, 502);
    let run = kode(
        &fake,
        &[
            "order",
            "create",
            "cadastre",
            "--cadastre",
            "0301-207-45-0-0",
            "--product",
            "WI03010033",
            "--reference",
            "R",
            "--technical-reference",
            "acme-1",
        ],
    )
    .await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("502"), "{}", run.stderr);
    assert!(
        run.stderr.contains("may have placed the order"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("\"acme-1\""), "{}", run.stderr);
    assert!(!run.stderr.contains("try again later"), "{}", run.stderr);
}
