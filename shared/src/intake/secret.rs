//! The push secret and its three carriers: query parameter `token`,
//! `Authorization: Bearer <secret>`, or the password of HTTP Basic auth.

use std::fmt;

use base64::Engine as _;
use http::header::AUTHORIZATION;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use super::IntakeRequest;
use crate::Secret;

/// The shared secret KODE's callback URL carries. Loaded once per cold start.
#[derive(Clone)]
pub struct PushSecret {
    secret: Secret,
    /// Candidates are compared digest to digest, so the comparison takes the
    /// same time whatever their length or content.
    digest: [u8; 32],
}

/// Why the push secret could not be loaded at start-up.
#[derive(Debug, thiserror::Error)]
pub enum PushSecretError {
    #[error(
        "no push secret: set PUSH_SECRET_ARN (a Secrets Manager secret) or PUSH_TOKEN \
         (the secret itself)"
    )]
    Missing,
    #[error("the push secret in {0} is empty")]
    Empty(&'static str),
    #[error("reading the push secret from PUSH_SECRET_ARN: {0}")]
    SecretsManager(String),
}

impl PushSecretError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, PushSecretError::SecretsManager(_))
    }
}

impl PushSecret {
    pub fn new(secret: Secret) -> Result<PushSecret, PushSecretError> {
        if secret.expose().trim().is_empty() {
            return Err(PushSecretError::Empty("the configuration"));
        }
        let digest = Sha256::digest(secret.expose().as_bytes()).into();
        Ok(PushSecret { secret, digest })
    }

    /// From `PUSH_SECRET_ARN` (Secrets Manager) when set, else `PUSH_TOKEN`.
    pub async fn from_env(sdk: &aws_config::SdkConfig) -> Result<PushSecret, PushSecretError> {
        let non_empty = |name| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        PushSecret::load(non_empty("PUSH_SECRET_ARN"), non_empty("PUSH_TOKEN"), sdk).await
    }

    /// The ARN wins when both are given. A Secrets Manager value is either
    /// the secret itself or a JSON object with a `token` field.
    pub async fn load(
        secret_arn: Option<String>,
        token: Option<String>,
        sdk: &aws_config::SdkConfig,
    ) -> Result<PushSecret, PushSecretError> {
        match (secret_arn, token) {
            (Some(arn), _) => {
                let value = crate::aws::secret_string(sdk, &arn)
                    .await
                    .map_err(PushSecretError::SecretsManager)?;
                let value = Secret::new(value);
                PushSecret::new(Secret::new(token_from_secret_value(&value)))
                    .map_err(|_| PushSecretError::Empty("PUSH_SECRET_ARN"))
            }
            (None, Some(token)) => PushSecret::new(Secret::new(token))
                .map_err(|_| PushSecretError::Empty("PUSH_TOKEN")),
            (None, None) => Err(PushSecretError::Missing),
        }
    }

    pub fn secret(&self) -> &Secret {
        &self.secret
    }

    /// Constant-time comparison of one candidate.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        self.matches_choice(candidate).into()
    }

    fn matches_choice(&self, candidate: &[u8]) -> Choice {
        let digest: [u8; 32] = Sha256::digest(candidate).into();
        digest.ct_eq(&self.digest)
    }

    /// Whether any carrier of the request holds the secret. Every candidate
    /// is compared, so timing does not tell which carrier was tried.
    pub fn authorizes(&self, request: &IntakeRequest) -> bool {
        let mut ok = Choice::from(0);
        for (_, token) in request.query.iter().filter(|(k, _)| k == "token") {
            ok |= self.matches_choice(token.as_bytes());
        }
        for value in request.headers.get_all(AUTHORIZATION) {
            if let Some(candidate) = credential(value.as_bytes()) {
                ok |= self.matches_choice(&candidate);
            }
        }
        ok.into()
    }
}

impl fmt::Debug for PushSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PushSecret(***)")
    }
}

/// The secret from an `Authorization` value: the Bearer token, or the
/// password of Basic auth (the user name is ignored: KODE lets the
/// integrator put any in the callback URL).
fn credential(value: &[u8]) -> Option<Vec<u8>> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.as_bytes().to_vec());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        let colon = decoded.iter().position(|&b| b == b':')?;
        return Some(decoded[colon + 1..].to_vec());
    }
    None
}

fn token_from_secret_value(value: &Secret) -> String {
    let raw = value.expose().trim();
    match serde_json::from_str::<serde_json::Value>(raw) {
        Ok(serde_json::Value::Object(map)) => map
            .get("token")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        _ => raw.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> PushSecret {
        PushSecret::new(Secret::new("s3cret-push")).unwrap()
    }

    #[test]
    fn matches_only_the_exact_secret() {
        let s = secret();
        assert!(s.matches(b"s3cret-push"));
        assert!(!s.matches(b"s3cret-pusH"));
        assert!(!s.matches(b"s3cret-push "));
        assert!(!s.matches(b"s3cret"));
        assert!(!s.matches(b""));
    }

    #[test]
    fn bearer_and_basic_carry_the_secret() {
        assert_eq!(credential(b"Bearer abc").as_deref(), Some(&b"abc"[..]));
        assert_eq!(credential(b"bearer  abc ").as_deref(), Some(&b"abc"[..]));
        // "kode:p:w" → user "kode", password "p:w"
        assert_eq!(
            credential(b"Basic a29kZTpwOnc=").as_deref(),
            Some(&b"p:w"[..])
        );
        assert_eq!(credential(b"Basic not-base64!"), None);
        assert_eq!(credential(b"Digest abc"), None);
        assert_eq!(credential(b"abc"), None);
    }

    #[test]
    fn secrets_manager_value_is_plain_or_json_with_token() {
        assert_eq!(token_from_secret_value(&Secret::new(" abc\n")), "abc");
        assert_eq!(
            token_from_secret_value(&Secret::new(r#"{"token":"abc"}"#)),
            "abc"
        );
        assert_eq!(token_from_secret_value(&Secret::new(r#"{"x":"abc"}"#)), "");
    }

    #[test]
    fn empty_secret_is_refused_and_debug_hides_the_value() {
        assert!(matches!(
            PushSecret::new(Secret::new("  ")),
            Err(PushSecretError::Empty(_))
        ));
        assert_eq!(format!("{:?}", secret()), "PushSecret(***)");
    }

    #[tokio::test]
    async fn missing_configuration_names_both_settings() {
        let sdk = aws_config::SdkConfig::builder().build();
        let err = PushSecret::load(None, None, &sdk).await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("PUSH_SECRET_ARN") && text.contains("PUSH_TOKEN"),
            "{text}"
        );
        let err = PushSecret::load(None, Some(" ".into()), &sdk)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("PUSH_TOKEN"));
        assert!(PushSecret::load(None, Some("t".into()), &sdk).await.is_ok());
    }
}
