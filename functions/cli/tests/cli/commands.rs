//! Each command against the fake KODE: output, exit codes, `--json` round-trips.

use fake_kode::{samples, Endpoint, FakeKode};
use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_check_shows_scopes_and_granted_lifetime_but_no_token() {
    let fake = FakeKode::start().await;
    fake.set_token_lifetime(1800);
    let run = kode(&fake, &["auth", "check"]).await;
    run.assert_ok();
    assert!(run.stdout.contains("Scopes:"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("Lifetime:   30 min 0 s (as granted by KODE)"),
        "{}",
        run.stdout
    );
    assert_eq!(fake.grants("password"), 1);

    let run = kode(&fake, &["auth", "check", "--json"]).await;
    let body = run.assert_ok().json();
    assert!(body["scopes"].is_array());
    assert_eq!(body["lifetimeSeconds"], 1800);
    assert_eq!(body["lifetimeAssumed"], false);
    assert_eq!(
        body.as_object().unwrap().len(),
        3,
        "only scopes and lifetime: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_check_says_when_it_assumed_the_lifetime() {
    let fake = FakeKode::start().await;
    fake.omit_token_lifetime(true);
    let run = kode(&fake, &["auth", "check"]).await;
    run.assert_ok();
    assert!(
        run.stdout
            .contains("Lifetime:   1 h 0 min (assumed: KODE sent no expires_in)"),
        "{}",
        run.stdout
    );
    let body = kode(&fake, &["auth", "check", "--json"])
        .await
        .assert_ok()
        .json();
    assert_eq!(body["lifetimeSeconds"], 3600);
    assert_eq!(body["lifetimeAssumed"], true);
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
    let id = created["id"]
        .as_u64()
        .unwrap_or_else(|| panic!("{created}"));
    // `--json` is KODE's own answer, which is what a later GET serves.
    assert_eq!(
        created,
        served(&fake, &format!("/kode/v1/orders/{id}")).await
    );
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
