//! What is decided before any request: validation, dry runs, help, settings.

use fake_kode::{samples, FakeKode};
use serde_json::{json, Value};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_credentials_are_named_before_any_request() {
    let fake = FakeKode::start().await;
    let env = vec![("KODE_API_URL".to_owned(), fake.base_url())];
    let run = kode_with(env, &["products", "--municipality", "0301"]).await;
    run.assert_usage_error("KODE_CLIENT_ID is not set");
    assert_no_requests(&fake);
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
        ("KODE_SECRET_ARN", "secret-arn-from-env"),
        ("ASSET_BUCKET", "bucket-from-env"),
        ("LEDGER_TABLE", "table-from-env"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let commands: [&[&str]; 15] = [
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
        &["sync", "--help"],
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
