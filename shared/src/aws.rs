//! One place that builds the AWS SDK configuration. The SDK is compiled
//! without its default HTTPS client (one TLS stack, ring, for the whole
//! binary), so every client must be built from this config.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use aws_smithy_http_client::Builder;

/// Loads region, credentials and `AWS_ENDPOINT_URL` the usual way. Call once
/// per cold start and share the result.
pub async fn sdk_config() -> SdkConfig {
    let http_client = Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client)
        .load()
        .await
}

/// An S3 client; path-style addressing when an endpoint override is set
/// (moto and other emulators do not serve virtual-hosted buckets).
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let path_style = std::env::var_os("AWS_ENDPOINT_URL").is_some()
        || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
    let s3_config = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(path_style)
        .build();
    aws_sdk_s3::Client::from_conf(s3_config)
}

/// Reads a Secrets Manager secret's string value.
pub async fn secret_string(config: &SdkConfig, secret_id: &str) -> Result<String, String> {
    let client = aws_sdk_secretsmanager::Client::new(config);
    let output = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| {
            format!(
                "reading secret {secret_id}: {}",
                aws_sdk_secretsmanager::error::DisplayErrorContext(e)
            )
        })?;
    output
        .secret_string()
        .map(str::to_owned)
        .ok_or_else(|| format!("secret {secret_id} has no string value"))
}
