//! Sending one attempt: the signed POST of the contract, the capped response, and an error
//! text that says what happened when no response came.

use std::{sync::Arc, time::Duration};

use hookrelay_shared::{
    Config, VERSION,
    config::{MAX_RESPONSE_BODY_BYTES, MAX_RESPONSE_HEADER_BYTES, MAX_RESPONSE_HEADERS},
    custom_headers::{CustomHeaders, REDACTED},
    duration::format_duration,
    jobs::Trigger,
    ssrf,
    webhooks::Target,
};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;

/// Everything needed to make one attempt of a delivery.
#[derive(Clone, Debug)]
pub struct AttemptRequest {
    pub delivery_id: Uuid,
    pub event_id: String,
    pub event_received_at: OffsetDateTime,
    pub event_type: String,
    /// The exact bytes stored in `events.body`, which are signed and sent.
    pub body: Arc<str>,
    pub target: Arc<Target>,
    pub attempt: i32,
    pub trigger: Trigger,
    /// When the delivery was created (the retry window is measured from it).
    pub delivery_created_at: OffsetDateTime,
    /// Its place in an ordered webhook's sequence ([`hookrelay_shared::ordering`]): the
    /// recorder promotes the next one when this one ends.
    pub seq: Option<i64>,
}

/// What happened when the request was made.
#[derive(Clone, Debug)]
pub struct AttemptOutcome {
    pub attempted_at: OffsetDateTime,
    pub request_url: String,
    pub request_headers: Value,
    pub response_code: Option<u16>,
    pub response_headers: Option<Value>,
    pub response_body: Option<String>,
    pub response_body_truncated: bool,
    /// More headers (or header bytes) came than are stored.
    pub response_headers_truncated: bool,
    pub error: Option<String>,
    pub duration: Duration,
    /// `Retry-After` of a 429 or 503 answer.
    pub retry_after: Option<Duration>,
}

impl AttemptOutcome {
    /// A 2xx answer.
    pub fn success(&self) -> bool {
        self.error.is_none() && self.response_code.is_some_and(|c| (200..300).contains(&c))
    }
}

/// The one HTTP client of a dispatcher process.
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    allow_private: bool,
    timeout: Duration,
}

impl Sender {
    /// A client that never follows redirects, never uses a proxy, resolves names through the
    /// SSRF guard and gives up on a whole attempt after `request_timeout`.
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(config.request_timeout.0)
            .dns_resolver(ssrf::GuardedResolver::new(config.allow_private_targets))
            .tcp_nodelay(true)
            // Keep-alive matters most at high rates to one endpoint; many idle sockets are cheap.
            .pool_max_idle_per_host(256)
            .user_agent(format!("hookrelay/{VERSION}"))
            .build()?;
        Ok(Self {
            client,
            allow_private: config.allow_private_targets,
            timeout: config.request_timeout.0,
        })
    }

    /// Makes the attempt. Never fails: every problem becomes the outcome's `error`.
    pub async fn send(&self, req: &AttemptRequest) -> AttemptOutcome {
        let attempted_at = OffsetDateTime::now_utc();
        let started = tokio::time::Instant::now();
        let url = req.target.webhook.url.clone();
        let headers = self.headers(req, attempted_at.unix_timestamp());
        let request_headers = redact(headers_json(&headers), &req.target.webhook.headers);
        let mut out = AttemptOutcome {
            attempted_at,
            request_url: url.clone(),
            request_headers,
            response_code: None,
            response_headers: None,
            response_body: None,
            response_body_truncated: false,
            response_headers_truncated: false,
            error: None,
            duration: Duration::ZERO,
            retry_after: None,
        };
        // reqwest skips the resolver for IP literals, so the URL is checked here first.
        let parsed = match ssrf::check_url(&url, self.allow_private) {
            Ok(u) => u,
            Err(ssrf::UrlError::Private(ip)) => {
                out.error = Some(format!(
                    "refused: {ip} is in a private, loopback or link-local range (set HOOKRELAY_ALLOW_PRIVATE_TARGETS=true to allow)"
                ));
                out.duration = started.elapsed();
                return out;
            }
            Err(e) => {
                out.error = Some(format!("invalid url: {e}"));
                out.duration = started.elapsed();
                return out;
            }
        };
        let result = self
            .client
            .post(parsed)
            .headers(headers)
            .body(req.body.as_bytes().to_vec())
            .send()
            .await;
        match result {
            Ok(resp) => self.read_response(resp, &mut out).await,
            Err(e) => out.error = Some(describe_error(&e, self.timeout)),
        }
        out.duration = started.elapsed();
        out
    }

    fn headers(&self, req: &AttemptRequest, timestamp: i64) -> HeaderMap {
        let sig = req
            .target
            .keys
            .sign_header(&req.event_id, timestamp, req.body.as_bytes());
        let mut h = HeaderMap::new();
        // The webhook's own headers first: the contract's below replace any that slipped past
        // validation (names are checked on create and update).
        for (name, value) in req.target.webhook.headers.expose() {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                h.insert(n, v);
            }
        }
        let mut put = |name: &'static str, value: String| {
            // Event ids and types are validated printable ASCII, so this only guards against bugs.
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.insert(HeaderName::from_static(name), v);
            }
        };
        put("content-type", "application/json".into());
        put("user-agent", format!("hookrelay/{VERSION}"));
        put("webhook-id", req.event_id.clone());
        put("webhook-timestamp", timestamp.to_string());
        put("webhook-signature", sig.clone());
        put("x-webhook-signature", sig);
        put("x-webhook-event", req.event_type.clone());
        put("x-webhook-attempt", req.attempt.to_string());
        h
    }

    async fn read_response(&self, mut resp: reqwest::Response, out: &mut AttemptOutcome) {
        let status = resp.status().as_u16();
        out.response_code = Some(status);
        let (headers, cut) = capped_headers_json(resp.headers());
        out.response_headers = Some(headers);
        out.response_headers_truncated = cut;
        if status == 429 || status == 503 {
            out.retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| hookrelay_shared::retry::parse_retry_after(v, OffsetDateTime::now_utc()));
        }
        if resp.status().is_redirection() {
            let location = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_else(|| "(no location)".into());
            out.error = Some(format!("redirect to {location} not followed"));
        }
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    let room = MAX_RESPONSE_BODY_BYTES - body.len();
                    if chunk.len() > room {
                        body.extend_from_slice(&chunk[..room]);
                        // Stop reading: the rest is not stored, and a huge body must not hold
                        // a permit for long.
                        out.response_body_truncated = true;
                        break;
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    if out.error.is_none() {
                        out.error = Some(format!(
                            "reading the response body: {}",
                            describe_error(&e, self.timeout)
                        ));
                    }
                    break;
                }
            }
        }
        out.response_body = Some(clean_text(&String::from_utf8_lossy(&body)));
    }
}

/// PostgreSQL text and jsonb can't hold NUL characters; they are replaced.
pub fn clean_text(s: &str) -> String {
    if s.contains('\0') {
        s.replace('\0', "\u{fffd}")
    } else {
        s.to_owned()
    }
}

/// Headers as a JSON object; repeated headers are joined with `, `.
fn headers_json(headers: &HeaderMap) -> Value {
    let mut map = Map::new();
    for (name, value) in headers {
        let v = clean_text(&String::from_utf8_lossy(value.as_bytes()));
        join_header(&mut map, name.as_str(), v);
    }
    Value::Object(map)
}

/// Adds a header to the JSON object; a repeated name's values are joined with `, `.
fn join_header(map: &mut Map<String, Value>, name: &str, value: String) {
    match map.get_mut(name) {
        Some(Value::String(existing)) => {
            existing.push_str(", ");
            existing.push_str(&value);
        }
        _ => {
            map.insert(name.to_owned(), Value::String(value));
        }
    }
}

/// The stored request headers with the webhook's custom header values replaced by `***`.
fn redact(mut stored: Value, custom: &CustomHeaders) -> Value {
    if let Value::Object(map) = &mut stored {
        for (name, value) in map.iter_mut() {
            if custom.contains(name) {
                *value = Value::String(REDACTED.to_owned());
            }
        }
    }
    stored
}

/// Response headers as a JSON object, at most [`MAX_RESPONSE_HEADERS`] names and
/// [`MAX_RESPONSE_HEADER_BYTES`] bytes; the flag says whether some were left out.
fn capped_headers_json(headers: &HeaderMap) -> (Value, bool) {
    let mut map = Map::new();
    let mut bytes = 0usize;
    let mut cut = false;
    for (name, value) in headers {
        let v = clean_text(&String::from_utf8_lossy(value.as_bytes()));
        let cost = name.as_str().len().saturating_add(v.len());
        let new_name = !map.contains_key(name.as_str());
        if bytes.saturating_add(cost) > MAX_RESPONSE_HEADER_BYTES
            || (new_name && map.len() >= MAX_RESPONSE_HEADERS)
        {
            cut = true;
            continue;
        }
        bytes += cost;
        join_header(&mut map, name.as_str(), v);
    }
    (Value::Object(map), cut)
}

/// Turns a reqwest error into the short, stable text the delivery log shows.
pub fn describe_error(err: &reqwest::Error, timeout: Duration) -> String {
    if err.is_timeout() {
        return format!("timeout after {}", format_duration(timeout));
    }
    let mut messages = Vec::new();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        messages.push(e.to_string());
        source = e.source();
    }
    let innermost = messages.last().cloned().unwrap_or_default();
    let all = messages.join(": ").to_lowercase();
    let text = if all.contains("private, loopback or link-local") {
        format!("refused: {innermost}")
    } else if all.contains("connection refused") {
        "connection refused".to_owned()
    } else if all.contains("dns error") || all.contains("did not resolve") || all.contains("failed to lookup")
    {
        format!("dns: {innermost}")
    } else if all.contains("certificate") || all.contains("tls") || all.contains("handshake") {
        format!("tls: {innermost}")
    } else if all.contains("timed out") {
        format!("timeout after {}", format_duration(timeout))
    } else if err.is_connect() {
        format!("connect: {innermost}")
    } else {
        format!("request failed: {}", messages.join(": "))
    };
    clean_text(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_characters_are_replaced() {
        assert_eq!(clean_text("a\0b"), "a\u{fffd}b");
        assert_eq!(clean_text("plain"), "plain");
    }

    #[test]
    fn response_headers_are_capped_in_count_and_bytes() {
        let mut h = HeaderMap::new();
        for i in 0..100 {
            h.insert(
                HeaderName::from_bytes(format!("x-h{i}").as_bytes()).expect("name"),
                HeaderValue::from_static("v"),
            );
        }
        let (v, cut) = capped_headers_json(&h);
        assert!(cut);
        assert_eq!(v.as_object().map(Map::len), Some(MAX_RESPONSE_HEADERS));
        let mut big = HeaderMap::new();
        let long = "a".repeat(4000);
        for i in 0..10 {
            big.insert(
                HeaderName::from_bytes(format!("x-b{i}").as_bytes()).expect("name"),
                HeaderValue::from_str(&long).expect("value"),
            );
        }
        let (v, cut) = capped_headers_json(&big);
        assert!(cut);
        let stored: usize = v
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
                    .sum()
            })
            .unwrap_or(0);
        assert!(stored <= MAX_RESPONSE_HEADER_BYTES, "{stored}");
        let (_, cut) = capped_headers_json(&HeaderMap::new());
        assert!(!cut);
    }

    #[test]
    fn custom_header_values_are_redacted_in_the_stored_request() {
        let custom = CustomHeaders::from_json(&serde_json::json!({"X-Api-Key": "s3cret"}));
        let mut h = HeaderMap::new();
        h.insert("x-api-key", HeaderValue::from_static("s3cret"));
        h.insert("webhook-id", HeaderValue::from_static("evt_1"));
        let stored = redact(headers_json(&h), &custom);
        assert_eq!(
            stored,
            serde_json::json!({"x-api-key": "***", "webhook-id": "evt_1"})
        );
    }

    #[test]
    fn repeated_headers_are_joined() {
        let mut h = HeaderMap::new();
        h.append("set-cookie", HeaderValue::from_static("a=1"));
        h.append("set-cookie", HeaderValue::from_static("b=2"));
        assert_eq!(headers_json(&h), serde_json::json!({"set-cookie": "a=1, b=2"}));
    }
}
