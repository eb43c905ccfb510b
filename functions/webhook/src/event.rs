//! The three HTTP event shapes a deployed webhook can receive, and their
//! matching responses.

use aws_lambda_events::apigw::{
    ApiGatewayProxyRequest, ApiGatewayProxyResponse, ApiGatewayV2httpRequest,
    ApiGatewayV2httpResponse,
};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::lambda_function_urls::{
    LambdaFunctionUrlRequest, LambdaFunctionUrlResponse,
};
use base64::Engine as _;
use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use http::{HeaderMap, Method};
use kode::intake::{query_pairs, IntakeRequest, IntakeResponse, RequestId};
use serde::Serialize;
use serde_json::Value;

use crate::WebhookError;

/// A decoded HTTP event.
#[derive(Debug)]
pub enum HttpEvent {
    /// API Gateway HTTP API, payload format 2.0.
    HttpApi(Box<ApiGatewayV2httpRequest>),
    /// Lambda Function URL (also payload 2.0, told apart by its domain).
    FunctionUrl(Box<LambdaFunctionUrlRequest>),
    /// API Gateway REST API, payload format 1.0.
    Rest(Box<ApiGatewayProxyRequest>),
}

/// Which response shape to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    HttpApi,
    FunctionUrl,
    Rest,
}

impl HttpEvent {
    pub fn from_value(value: Value) -> Result<HttpEvent, WebhookError> {
        let version = value.get("version").and_then(Value::as_str);
        let context = value.get("requestContext");
        let domain = context
            .and_then(|c| c.get("domainName"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let has_v2_http = context.and_then(|c| c.get("http")).is_some();
        let has_v1_method = value.get("httpMethod").is_some_and(Value::is_string);
        if version == Some("2.0") || (version.is_none() && has_v2_http) {
            if domain.contains(".lambda-url.") {
                return parse(value, "Function URL").map(HttpEvent::FunctionUrl);
            }
            return parse(value, "HTTP API 2.0").map(HttpEvent::HttpApi);
        }
        if has_v1_method && matches!(version, None | Some("1.0")) {
            return parse(value, "REST API 1.0").map(HttpEvent::Rest);
        }
        Err(WebhookError::UnsupportedEvent(describe(&value)))
    }

    pub fn transport(&self) -> Transport {
        match self {
            HttpEvent::HttpApi(_) => Transport::HttpApi,
            HttpEvent::FunctionUrl(_) => Transport::FunctionUrl,
            HttpEvent::Rest(_) => Transport::Rest,
        }
    }

    pub fn into_request(self) -> Result<IntakeRequest, WebhookError> {
        match self {
            HttpEvent::HttpApi(e) => {
                let e = *e;
                let query = match e.raw_query_string.as_deref() {
                    Some(raw) if !raw.is_empty() => query_pairs(raw),
                    _ => owned_pairs(e.query_string_parameters.iter()),
                };
                Ok(IntakeRequest {
                    method: e.request_context.http.method,
                    path: e
                        .raw_path
                        .or(e.request_context.http.path)
                        .unwrap_or_default(),
                    query,
                    headers: e.headers,
                    body: decode_body(e.body, e.is_base64_encoded)?,
                    request_id: RequestId::from_transport(e.request_context.request_id.as_deref()),
                })
            }
            HttpEvent::FunctionUrl(e) => {
                let e = *e;
                let method = e
                    .request_context
                    .http
                    .method
                    .as_deref()
                    .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
                    .ok_or(WebhookError::MalformedEvent {
                        kind: "Function URL",
                        problem: "requestContext.http.method is missing or invalid".into(),
                    })?;
                let query = match e.raw_query_string.as_deref() {
                    Some(raw) if !raw.is_empty() => query_pairs(raw),
                    _ => e.query_string_parameters.into_iter().collect(),
                };
                Ok(IntakeRequest {
                    method,
                    path: e
                        .raw_path
                        .or(e.request_context.http.path)
                        .unwrap_or_default(),
                    query,
                    headers: e.headers,
                    body: decode_body(e.body, e.is_base64_encoded)?,
                    request_id: RequestId::from_transport(e.request_context.request_id.as_deref()),
                })
            }
            HttpEvent::Rest(e) => {
                let e = *e;
                let query = if e.multi_value_query_string_parameters.is_empty() {
                    owned_pairs(e.query_string_parameters.iter())
                } else {
                    owned_pairs(e.multi_value_query_string_parameters.iter())
                };
                // multiValueHeaders holds every value; headers only the last.
                let headers = if e.multi_value_headers.is_empty() {
                    e.headers
                } else {
                    e.multi_value_headers
                };
                Ok(IntakeRequest {
                    method: e.http_method,
                    path: e.path.or(e.request_context.path).unwrap_or_default(),
                    query,
                    headers,
                    body: decode_body(e.body, e.is_base64_encoded)?,
                    request_id: RequestId::from_transport(e.request_context.request_id.as_deref()),
                })
            }
        }
    }
}

/// The response in the shape the event's transport expects.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum HttpResponse {
    HttpApi(ApiGatewayV2httpResponse),
    FunctionUrl(LambdaFunctionUrlResponse),
    Rest(ApiGatewayProxyResponse),
}

impl HttpResponse {
    pub fn new(transport: Transport, response: &IntakeResponse) -> HttpResponse {
        let status = i64::from(response.status.as_u16());
        let body = response.body_string();
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static(IntakeResponse::CONTENT_TYPE),
        );
        if let Some(allow) = response.allow {
            headers.insert(ALLOW, HeaderValue::from_static(allow));
        }
        match transport {
            Transport::HttpApi => {
                let mut r = ApiGatewayV2httpResponse::default();
                r.status_code = status;
                r.headers = headers;
                r.body = Some(Body::Text(body));
                HttpResponse::HttpApi(r)
            }
            Transport::FunctionUrl => {
                let mut r = LambdaFunctionUrlResponse::default();
                r.status_code = status;
                r.headers = headers;
                r.body = Some(body);
                HttpResponse::FunctionUrl(r)
            }
            Transport::Rest => {
                let mut r = ApiGatewayProxyResponse::default();
                r.status_code = status;
                r.headers = headers;
                r.body = Some(Body::Text(body));
                HttpResponse::Rest(r)
            }
        }
    }

    pub fn status_code(&self) -> i64 {
        match self {
            HttpResponse::HttpApi(r) => r.status_code,
            HttpResponse::FunctionUrl(r) => r.status_code,
            HttpResponse::Rest(r) => r.status_code,
        }
    }

    /// The JSON body (`Null` if there is none).
    pub fn body_json(&self) -> Value {
        let text = match self {
            HttpResponse::HttpApi(r) => text_of(r.body.as_ref()),
            HttpResponse::Rest(r) => text_of(r.body.as_ref()),
            HttpResponse::FunctionUrl(r) => r.body.as_deref(),
        };
        text.and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or(Value::Null)
    }
}

fn text_of(body: Option<&Body>) -> Option<&str> {
    match body {
        Some(Body::Text(text)) => Some(text),
        _ => None,
    }
}

fn parse<T: serde::de::DeserializeOwned>(
    value: Value,
    kind: &'static str,
) -> Result<Box<T>, WebhookError> {
    // serde's message may quote a value of the event, and header and query
    // values can hold the push secret: report only the category.
    serde_json::from_value(value)
        .map(Box::new)
        .map_err(|e| WebhookError::MalformedEvent {
            kind,
            problem: format!("does not match the event shape ({:?} error)", e.classify()),
        })
}

fn owned_pairs<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Vec<(String, String)> {
    pairs.map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

fn decode_body(body: Option<String>, base64_encoded: bool) -> Result<Bytes, WebhookError> {
    let body = body.unwrap_or_default();
    if !base64_encoded {
        return Ok(Bytes::from(body.into_bytes()));
    }
    base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .map(Bytes::from)
        .map_err(|_| WebhookError::InvalidBase64)
}

/// Names what arrived without quoting it (its keys only).
fn describe(value: &Value) -> String {
    match value.as_object() {
        Some(object) => {
            let keys: Vec<&str> = object.keys().map(String::as_str).take(12).collect();
            format!("not an HTTP event (top-level keys: {})", keys.join(", "))
        }
        None => "not an HTTP event (not a JSON object)".to_owned(),
    }
}
