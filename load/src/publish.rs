//! Publishing through `POST /trigger`, as any client of the contract does.

use std::time::Duration;

use conformance::wire::Transport;
use serde_json::json;

/// A keep-alive HTTP client for one server's `/trigger`.
#[derive(Clone)]
pub struct Publisher {
    http: reqwest::Client,
    url: String,
    token: Option<String>,
}

impl Publisher {
    pub fn new(base: &str, token: Option<&str>, transport: &Transport) -> Self {
        let http = conformance::target::http_client_for(transport)
            .timeout(Duration::from_secs(30))
            .build()
            .expect("an HTTP client builds");
        Self {
            http,
            url: format!("{base}/trigger"),
            token: token.map(str::to_owned),
        }
    }

    /// Publishes one event; returns the id the server gave it.
    pub async fn publish(&self, event: &str, data: &str) -> Result<u64, String> {
        let body = json!({ "event": event, "data": data }).to_string();
        let (status, answer) = self.post(body.into_bytes()).await?;
        if status != 202 {
            return Err(format!("POST /trigger answered {status}: {answer}"));
        }
        serde_json::from_str::<serde_json::Value>(&answer)
            .ok()
            .and_then(|v| v.get("id").and_then(serde_json::Value::as_u64))
            .ok_or_else(|| format!("POST /trigger answered 202 without an id: {answer}"))
    }

    /// Sends any body as `application/json`; returns the status and the answer's body.
    pub async fn post(&self, body: Vec<u8>) -> Result<(u16, String), String> {
        let mut request = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .body(body);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("POST /trigger failed: {e}"))?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        Ok((status, text))
    }
}
