//! Turning reqwest results into `ApiError`s: KODE's own error text, never a
//! token, never the URL's query.

use std::error::Error as _;
use std::time::Duration;

use crate::deadline::Deadline;

use super::retry::{deadline_exceeded, parse_retry_after};
use super::ApiError;

/// Longest error text kept from a response body.
const MAX_MESSAGE_CHARS: usize = 300;

/// JSON bodies larger than this are not KODE answers we can use.
const MAX_JSON_BYTES: usize = 32 * 1024 * 1024;

/// Sends one request, giving up after `per_attempt` or at `deadline`,
/// whichever comes first.
pub(crate) async fn send(
    what: &str,
    request: reqwest::RequestBuilder,
    per_attempt: Duration,
    deadline: Deadline,
) -> Result<reqwest::Response, ApiError> {
    let limit = per_attempt.min(deadline.remaining());
    match tokio::time::timeout(limit, request.send()).await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(e)) => Err(transport(what, &e)),
        Err(_) if deadline.has_passed() => Err(deadline_exceeded(
            what,
            1,
            "deadline reached while waiting for KODE",
        )),
        Err(_) => Err(ApiError::Transport {
            what: what.to_owned(),
            message: format!("no response within {} s", limit.as_secs_f32()),
        }),
    }
}

/// A transport failure without the URL. Failures before anything was sent
/// are `Connect`, so that non-idempotent requests may still be retried.
pub(crate) fn transport(what: &str, error: &reqwest::Error) -> ApiError {
    let mut message = String::new();
    let mut source = error.source();
    while let Some(cause) = source {
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    if message.is_empty() {
        message = if error.is_timeout() {
            "timed out".into()
        } else {
            "request failed".into()
        };
    }
    let what = what.to_owned();
    if error.is_connect() {
        ApiError::Connect { what, message }
    } else {
        ApiError::Transport { what, message }
    }
}

/// A non-success response as an error carrying KODE's message. `secrets`
/// are cut out of the text in case KODE echoes them.
pub(crate) async fn status_error(
    what: &str,
    response: reqwest::Response,
    secrets: &[&str],
) -> ApiError {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    // A short, bounded read: error bodies are small, and a broken one must
    // not hide the status.
    let body = tokio::time::timeout(Duration::from_secs(5), read_limited(response, 64 * 1024))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    ApiError::Status {
        status,
        what: what.to_owned(),
        message: redact(&error_message(&body), secrets),
        retry_after,
    }
}

/// Reads a JSON body (bounded in size and time) and decodes it.
pub(crate) async fn json<T: serde::de::DeserializeOwned>(
    what: &str,
    response: reqwest::Response,
    per_attempt: Duration,
    deadline: Deadline,
) -> Result<T, ApiError> {
    let limit = per_attempt.min(deadline.remaining());
    let body = match tokio::time::timeout(limit, read_limited(response, MAX_JSON_BYTES)).await {
        Ok(body) => body,
        Err(_) if deadline.has_passed() => {
            return Err(deadline_exceeded(
                what,
                1,
                "deadline reached while reading KODE's answer",
            ))
        }
        Err(_) => {
            return Err(ApiError::Transport {
                what: what.to_owned(),
                message: format!("answer not complete within {} s", limit.as_secs_f32()),
            })
        }
    };
    let body = body.map_err(|e| match e {
        ReadError::Transport(e) => transport(what, &e),
        ReadError::TooLarge => ApiError::Decode {
            what: what.to_owned(),
            message: format!("response larger than {MAX_JSON_BYTES} bytes"),
        },
    })?;
    serde_json::from_slice(&body).map_err(|e| ApiError::Decode {
        what: what.to_owned(),
        message: e.to_string(),
    })
}

enum ReadError {
    Transport(reqwest::Error),
    TooLarge,
}

async fn read_limited(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Transport)? {
        if body.len() + chunk.len() > limit {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// KODE's error bodies are undocumented: take OAuth's `error_description`,
/// else `message`, else `error`, else the raw text, truncated.
pub(crate) fn error_message(body: &[u8]) -> String {
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(body) {
        for key in ["error_description", "message", "error", "detail", "title"] {
            if let Some(serde_json::Value::String(s)) = map.get(key) {
                if !s.trim().is_empty() {
                    return truncate(s.trim());
                }
            }
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        "(empty body)".to_owned()
    } else {
        truncate(text)
    }
}

fn truncate(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match clean.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &clean[..cut]),
        None => clean,
    }
}

fn redact(text: &str, secrets: &[&str]) -> String {
    secrets
        .iter()
        .filter(|s| s.len() >= 4)
        .fold(text.to_owned(), |acc, s| acc.replace(s, "***"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kode_messages_are_taken_from_known_fields() {
        assert_eq!(
            error_message(br#"{"error":"invalid_grant","error_description":"Bad credentials"}"#),
            "Bad credentials"
        );
        assert_eq!(
            error_message(br#"{"message":"Order 123 not found"}"#),
            "Order 123 not found"
        );
        assert_eq!(
            error_message(br#"{"error":"invalid_client"}"#),
            "invalid_client"
        );
        assert_eq!(
            error_message(b"<html>Bad Gateway</html>\n"),
            "<html>Bad Gateway</html>"
        );
        assert_eq!(error_message(b""), "(empty body)");
    }

    #[test]
    fn long_or_binary_bodies_are_cut() {
        let long = "x".repeat(5000);
        let message = error_message(long.as_bytes());
        assert_eq!(message.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert_eq!(error_message(b"a\x00b\nc"), "a b c");
    }

    #[test]
    fn echoed_secrets_are_removed() {
        assert_eq!(
            redact("token c0a8e2f4 is expired", &["c0a8e2f4", ""]),
            "token *** is expired"
        );
    }
}
