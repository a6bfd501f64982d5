//! A loopback proxy in front of the test Vault that can fail or delay chosen
//! requests, so Vault faults can be injected at a single step of a rotation.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

#[derive(Debug, Clone)]
pub enum VaultFault {
    /// Answer with this status and Vault's error shape.
    Status(u16, &'static str),
    /// Wait this long before forwarding.
    Delay(Duration),
    /// Someone else writes the same secret just before this request is forwarded.
    ForeignWriteFirst,
    /// Answer with this status and an error that quotes the request whole:
    /// its headers (the token) and body (the secret being written).
    Echo(u16),
    /// Answer `200` with a JSON body of this many bytes, without a length.
    Oversized(usize),
    /// Hold the client past its timeout and forward the request on its own
    /// after this long: a write that lands after its sender gave up.
    LateWrite(Duration),
}

#[derive(Debug, Clone)]
struct Rule {
    method: Method,
    path_contains: String,
    fault: VaultFault,
    times: usize,
}

#[derive(Clone)]
struct Proxy {
    upstream: String,
    http: reqwest::Client,
    rules: Arc<Mutex<Vec<Rule>>>,
    log: Arc<Mutex<Vec<String>>>,
    cut: Arc<std::sync::atomic::AtomicBool>,
}

pub struct VaultProxy {
    pub address: String,
    rules: Arc<Mutex<Vec<Rule>>>,
    log: Arc<Mutex<Vec<String>>>,
    cut: Arc<std::sync::atomic::AtomicBool>,
    stop: tokio_util::sync::CancellationToken,
}

impl Drop for VaultProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl VaultProxy {
    pub async fn start(upstream: &str) -> VaultProxy {
        let rules: Arc<Mutex<Vec<Rule>>> = Arc::default();
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let cut: Arc<std::sync::atomic::AtomicBool> = Arc::default();
        let proxy = Proxy {
            upstream: upstream.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
            rules: rules.clone(),
            log: log.clone(),
            cut: cut.clone(),
        };
        let app = axum::Router::new().fallback(forward).with_state(proxy);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let stop = tokio_util::sync::CancellationToken::new();
        let s = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { s.cancelled().await })
                .await
                .unwrap();
        });
        VaultProxy {
            address,
            rules,
            log,
            cut,
            stop,
        }
    }

    /// While `on`, every request is refused with 503, as if Vault were cut off.
    pub fn cut(&self, on: bool) {
        self.cut.store(on, std::sync::atomic::Ordering::SeqCst);
    }

    /// Fails the next `times` requests with `method` whose path and query contain `path_contains`.
    pub fn inject(&self, method: Method, path_contains: &str, fault: VaultFault, times: usize) {
        self.rules.lock().unwrap().push(Rule {
            method,
            path_contains: path_contains.to_string(),
            fault,
            times,
        });
    }

    /// "METHOD path?query status" of every request seen.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Injected faults not yet met by a request.
    pub fn unmet(&self) -> usize {
        self.rules.lock().unwrap().iter().map(|r| r.times).sum()
    }
}

async fn forward(
    State(p): State<Proxy>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = uri
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_default();
    if p.cut.load(std::sync::atomic::Ordering::SeqCst) {
        p.log
            .lock()
            .unwrap()
            .push(format!("{method} {target} 503 (cut off)"));
        let body = serde_json::json!({ "errors": ["cut off (test)"] });
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    }
    let fault = {
        let mut rules = p.rules.lock().unwrap();
        let hit = rules
            .iter()
            .position(|r| r.times > 0 && r.method == method && target.contains(&r.path_contains));
        hit.map(|i| {
            rules[i].times -= 1;
            rules[i].fault.clone()
        })
    };
    if let Some(VaultFault::Status(code, message)) = &fault {
        p.log
            .lock()
            .unwrap()
            .push(format!("{method} {target} {code} (injected)"));
        let body = serde_json::json!({ "errors": [message] });
        return (StatusCode::from_u16(*code).unwrap(), axum::Json(body)).into_response();
    }
    if let Some(VaultFault::Echo(code)) = &fault {
        p.log
            .lock()
            .unwrap()
            .push(format!("{method} {target} {code} (echo)"));
        let quoted: Vec<String> = headers
            .iter()
            .map(|(k, v)| format!("{k}: {}", String::from_utf8_lossy(v.as_bytes())))
            .collect();
        let message = format!(
            "cannot process {method} {target} ({}): {}",
            quoted.join(", "),
            String::from_utf8_lossy(&body)
        );
        let body = serde_json::json!({ "errors": [message] });
        return (StatusCode::from_u16(*code).unwrap(), axum::Json(body)).into_response();
    }
    if let Some(VaultFault::Oversized(size)) = &fault {
        p.log
            .lock()
            .unwrap()
            .push(format!("{method} {target} 200 (oversized)"));
        let filler = format!("{{\"data\": \"{}\"}}", "x".repeat(*size));
        let chunks: Vec<Result<Bytes, std::io::Error>> = filler
            .into_bytes()
            .chunks(64 * 1024)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let mut resp = (
            StatusCode::OK,
            axum::body::Body::from_stream(futures::stream::iter(chunks)),
        )
            .into_response();
        resp.headers_mut().insert(
            "content-type",
            axum::http::HeaderValue::from_static("application/json"),
        );
        return resp;
    }
    if let Some(VaultFault::Delay(d)) = &fault {
        tokio::time::sleep(*d).await;
    }
    if let Some(VaultFault::LateWrite(d)) = &fault {
        // Detached, so it lands even though the client hangs up first.
        let (late, d) = (p.clone(), *d);
        let (method, target, headers, body) = (
            method.clone(),
            target.clone(),
            headers.clone(),
            body.clone(),
        );
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            let mut req = late
                .http
                .request(method.clone(), format!("{}{target}", late.upstream))
                .body(body);
            for (name, value) in headers.iter() {
                if name != "host" && name != "content-length" {
                    req = req.header(name, value);
                }
            }
            let status = req.send().await.map(|r| r.status().as_u16()).unwrap_or(0);
            late.log
                .lock()
                .unwrap()
                .push(format!("{method} {target} {status} (landed late)"));
        });
        tokio::time::sleep(d + Duration::from_secs(5)).await;
        return (StatusCode::GATEWAY_TIMEOUT, "late").into_response();
    }
    if let Some(VaultFault::ForeignWriteFirst) = &fault {
        // e.g. an operator re-saving the secret by hand: a new version, same content
        let token = headers.get("x-vault-token").cloned().expect("a token");
        let url = format!("{}{}", p.upstream, uri.path());
        let current: serde_json::Value = p
            .http
            .get(&url)
            .header("x-vault-token", token.clone())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let status = p
            .http
            .post(&url)
            .header("x-vault-token", token)
            .json(&serde_json::json!({ "data": current["data"]["data"] }))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        p.log
            .lock()
            .unwrap()
            .push(format!("POST {} {status} (foreign write)", uri.path()));
    }
    let mut req = p
        .http
        .request(method.clone(), format!("{}{target}", p.upstream))
        .body(body);
    for (name, value) in headers.iter() {
        if name != "host" && name != "content-length" {
            req = req.header(name, value);
        }
    }
    match req.send().await {
        Ok(r) => {
            let status = r.status();
            p.log
                .lock()
                .unwrap()
                .push(format!("{method} {target} {}", status.as_u16()));
            let ct = r.headers().get("content-type").cloned();
            let bytes = r.bytes().await.unwrap_or_default();
            let mut resp = (StatusCode::from_u16(status.as_u16()).unwrap(), bytes).into_response();
            if let Some(ct) = ct {
                resp.headers_mut().insert("content-type", ct);
            }
            resp
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}
