//! The contract's error answers (section 6): a status, one sentence saying what was wrong and
//! what is expected, and the headers some statuses require. Framework-free: an [`ApiError`]
//! becomes an `http` 1.x response (`http::Response::from`) for the frameworks built on that
//! crate (axum, warp, poem, salvo), and each example wraps it in its own response type.

use std::fmt;
use std::time::Duration;

/// The `Content-Type` of every error body.
pub const ERROR_CONTENT_TYPE: &str = "application/json";

/// An error response: `status`, body `{"error": message}`, plus `headers` (names in lower case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    pub headers: Vec<(&'static str, String)>,
}

impl ApiError {
    fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// Sets `name` (lower case), replacing an earlier value: some frameworks append, and a
    /// header said twice is a different answer.
    fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.retain(|(existing, _)| *existing != name);
        self.headers.push((name, value.into()));
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            401,
            "missing or wrong bearer token: send the header Authorization: Bearer <TRIGGER_TOKEN>",
        )
        .with_header("www-authenticate", "Bearer")
    }

    pub fn not_found(path: &str) -> Self {
        Self::new(
            404,
            format!(
                "no such path {}: the endpoints are /, /events, /trigger and /health",
                quoted(path)
            ),
        )
    }

    /// `allow` is the `Allow` header value, e.g. `"GET, HEAD"`.
    pub fn method_not_allowed(method: &str, path: &str, allow: &'static str) -> Self {
        Self::new(
            405,
            format!("method {method} is not allowed on {path}; allowed: {allow}"),
        )
        .with_header("allow", allow)
    }

    /// A body refused unread: see [`ApiError::closing_connection`].
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            413,
            format!("the request body is larger than {limit} bytes; send at most {limit} bytes"),
        )
        .closing_connection()
    }

    /// Says `Connection: close`. A server that answers without reading the whole request body
    /// must close the connection (the rest of the body is still on its way), and hyper does so
    /// without saying it (hyperium/hyper#3077), so a pooled client would send its next request
    /// into a closing connection. Refusals made before the body is read carry this.
    pub fn closing_connection(self) -> Self {
        self.with_header("connection", "close")
    }

    /// The request body did not arrive in full within `limit` (it stalled, or its
    /// `Content-Length` promised more than was sent). The body is left unread: see
    /// [`ApiError::closing_connection`].
    pub fn request_timeout(limit: Duration) -> Self {
        Self::new(
            408,
            format!(
                "the request body did not arrive in full within {} s; send the whole body, \
                 exactly as many bytes as Content-Length says",
                limit.as_secs()
            ),
        )
        .closing_connection()
    }

    /// The connection failed or broke while the body was being read.
    pub fn unreadable_body() -> Self {
        Self::new(400, "the request body could not be read to its end")
    }

    pub fn unsupported_media_type(got: Option<&str>) -> Self {
        let got = got.map_or_else(|| "none".to_owned(), quoted);
        Self::new(
            415,
            format!("Content-Type must be application/json, got {got}"),
        )
    }

    /// An `Idempotency-Key` used before with another body.
    pub fn idempotency_conflict(key: &str) -> Self {
        Self::new(
            422,
            format!(
                "Idempotency-Key {} was already used with another body; use a new key for a new event",
                quoted(key)
            ),
        )
    }

    /// The event log could not be reached: the event may or may not have been stored (a
    /// retry with the same `Idempotency-Key` publishes it at most once).
    pub fn log_unavailable(retry_after_secs: u64) -> Self {
        Self::unavailable(
            "the event log cannot be reached; retry later (with the same Idempotency-Key, a retry publishes at most once)",
            retry_after_secs,
        )
    }

    /// `MAX_CLIENTS` streams are open (or the server is shutting down): come back later.
    pub fn unavailable(message: impl Into<String>, retry_after_secs: u64) -> Self {
        Self::new(503, message).with_header("retry-after", retry_after_secs.max(1).to_string())
    }

    /// The JSON body, `{"error":"…"}`.
    pub fn body(&self) -> String {
        serde_json::json!({ "error": self.message }).to_string()
    }

    /// The status as `http`'s type (500 for a number that is no status, which no constructor
    /// here makes).
    pub fn status_code(&self) -> http::StatusCode {
        http::StatusCode::from_u16(self.status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR)
    }
}

/// The whole answer: the status, `Content-Type: application/json`, the status's own headers,
/// and the JSON body.
impl<B: From<String>> From<ApiError> for http::Response<B> {
    fn from(error: ApiError) -> Self {
        let mut response = http::Response::new(B::from(error.body()));
        *response.status_mut() = error.status_code();
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(ERROR_CONTENT_TYPE),
        );
        for (name, value) in error.headers {
            if let Ok(value) = http::HeaderValue::try_from(value) {
                headers.insert(name, value);
            }
        }
        response
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}

impl std::error::Error for ApiError {}

/// A value as a JSON string literal, so that quotes and control characters in user input are
/// shown escaped (and never break the one-line message), and long input is cut.
pub(crate) fn quoted(value: &str) -> String {
    const MAX_CHARS: usize = 80;
    let shown: String = value.chars().take(MAX_CHARS).collect();
    let mut text = serde_json::Value::String(shown).to_string();
    if value.chars().nth(MAX_CHARS).is_some() {
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_as_its_status_and_message_in_logs() {
        assert_eq!(
            ApiError::bad_request("event must be a string").to_string(),
            "400 event must be a string"
        );
    }

    #[test]
    fn body_is_json_with_escaped_message() {
        let error = ApiError::bad_request("bad \"x\"\nthing");
        let parsed: serde_json::Value = serde_json::from_str(&error.body()).unwrap();
        assert_eq!(parsed, serde_json::json!({ "error": "bad \"x\"\nthing" }));
    }

    #[test]
    fn statuses_carry_their_headers() {
        assert_eq!(
            ApiError::unauthorized().headers,
            vec![("www-authenticate", "Bearer".to_owned())]
        );
        let e = ApiError::method_not_allowed("PUT", "/trigger", "POST");
        assert_eq!(
            (e.status, e.headers),
            (405, vec![("allow", "POST".to_owned())])
        );
        let e = ApiError::unavailable("full", 0);
        assert_eq!(
            (e.status, e.headers),
            (503, vec![("retry-after", "1".to_owned())])
        );
    }

    #[test]
    fn becomes_an_http_response_with_its_status_type_headers_and_body() {
        let response = http::Response::<String>::from(ApiError::unauthorized());
        assert_eq!(response.status(), http::StatusCode::UNAUTHORIZED);
        let headers = response.headers();
        assert_eq!(headers["content-type"], ERROR_CONTENT_TYPE);
        assert_eq!(headers["www-authenticate"], "Bearer");
        assert_eq!(headers.len(), 2);
        assert_eq!(response.body(), &ApiError::unauthorized().body());
        let odd = ApiError::new(1000, "no such status");
        assert_eq!(odd.status_code(), http::StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn quoted_escapes_and_truncates() {
        assert_eq!(quoted("a b"), r#""a b""#);
        assert_eq!(quoted("a\r\nb"), r#""a\r\nb""#);
        let long = "x".repeat(200);
        assert!(quoted(&long).ends_with("\"…"));
        assert_eq!(quoted(&long).chars().count(), 80 + 3);
    }
}
