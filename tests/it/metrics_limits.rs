//! The `/metrics` listener's bounds (`local_http::Limits`) against clients that
//! hold connections open: idle sockets beyond the cap, silent and slowloris
//! connections, kept-alive idlers, and connections that never finish.
//!
//! Small limits keep each test short; every wait is on an observable event (a
//! response, or EOF) bounded by a timeout, never a bare sleep.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use masv_key_rotator::clock::ManualClock;
use masv_key_rotator::local_http::Limits;
use masv_key_rotator::metrics::Metrics;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// Far longer than any bound under test: hitting it means the server kept a connection.
const PATIENCE: Duration = Duration::from_secs(10);

struct Server {
    addr: std::net::SocketAddr,
    stop: CancellationToken,
}

impl Server {
    async fn start(limits: Limits) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = Metrics::new(
            Duration::from_secs(300),
            Arc::new(ManualClock::new(Utc::now())),
        );
        let stop = CancellationToken::new();
        let token = stop.clone();
        tokio::spawn(async move { metrics.serve_with(listener, token, limits).await });
        Server { addr, stop }
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.addr).await.unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn limits(max_connections: usize, header_read_timeout: Duration, max_age: Duration) -> Limits {
    Limits {
        max_connections,
        header_read_timeout,
        max_connection_age: max_age,
        ..Limits::default()
    }
}

const GET_METRICS: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n";

/// Reads one response (head and a Content-Length body); None if the server
/// closed the connection first.
async fn read_response(s: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().unwrap())
                })
                .expect("a Content-Length");
            if buf.len() >= end + 4 + length {
                return Some(String::from_utf8_lossy(&buf[..end + 4 + length]).to_string());
            }
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Sends `GET /metrics` on `s` and returns the response, asserting a 200.
async fn scrape(s: &mut TcpStream) -> String {
    s.write_all(GET_METRICS).await.unwrap();
    let answer = tokio::time::timeout(PATIENCE, read_response(s))
        .await
        .expect("the scrape is answered")
        .expect("a response, not a closed connection");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    answer
}

/// Waits (at most [`PATIENCE`]) for the server to close `s`, discarding anything
/// it sends; a reset counts as closed. Returns how many bytes came first.
async fn closed_by_server(s: &mut TcpStream) -> usize {
    let mut seen = 0;
    let mut chunk = [0u8; 4096];
    tokio::time::timeout(PATIENCE, async {
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen += n,
            }
        }
    })
    .await
    .expect("the server closed the connection");
    seen
}

#[tokio::test]
async fn idle_connections_beyond_the_cap_are_closed_in_turn_and_metrics_still_answers() {
    let cap = 4;
    let server = Server::start(limits(cap, Duration::from_millis(300), PATIENCE)).await;
    let mut idle = Vec::new();
    for _ in 0..cap + 3 {
        idle.push(server.connect().await);
    }
    // Queued behind the idlers, the scrape is served once their time is up.
    let answer = scrape(&mut server.connect().await).await;
    assert!(answer.contains("masv_key_rotator_sweeps_total"), "{answer}");
    for s in &mut idle {
        assert_eq!(closed_by_server(s).await, 0, "an idle connection got bytes");
    }
}

#[tokio::test]
async fn a_connection_beyond_the_cap_waits_for_a_free_slot() {
    let server = Server::start(limits(2, PATIENCE, PATIENCE)).await;
    let first = server.connect().await;
    let _second = server.connect().await;
    let mut third = server.connect().await;
    third.write_all(GET_METRICS).await.unwrap();
    // Both slots are held by idlers: no answer yet.
    let early = tokio::time::timeout(Duration::from_millis(300), read_response(&mut third)).await;
    assert!(early.is_err(), "answered beyond the cap: {early:?}");
    drop(first);
    let answer = tokio::time::timeout(PATIENCE, read_response(&mut third))
        .await
        .expect("answered once a slot is free")
        .expect("a response");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_header_timeout() {
    let timeout = Duration::from_millis(200);
    let server = Server::start(limits(4, timeout, PATIENCE)).await;
    let started = Instant::now();
    let mut s = server.connect().await;
    assert_eq!(closed_by_server(&mut s).await, 0);
    assert!(started.elapsed() >= timeout, "{:?}", started.elapsed());
}

/// Sends a request head one header line every 50 ms, without end, until the
/// server closes the connection; returns how many lines it had sent by then.
async fn drip_until_closed(s: TcpStream) -> usize {
    let (mut rx, mut tx) = s.into_split();
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    let dripping: tokio::task::JoinHandle<std::io::Result<()>> = tokio::spawn(async move {
        tx.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n")
            .await?;
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            tx.write_all(b"X-Drip: 1\r\n").await?;
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    let mut chunk = [0u8; 1024];
    let got = tokio::time::timeout(PATIENCE, rx.read(&mut chunk))
        .await
        .expect("the server closed the slowloris connection");
    assert!(matches!(got, Ok(0) | Err(_)), "got a response: {got:?}");
    dripping.abort();
    sent.load(Ordering::SeqCst)
}

/// Drips a request head at a server with `limits` and asserts it was cut off
/// no sooner than `bound`, while the client was still sending.
async fn assert_drip_cut_off_after(limits: Limits, bound: Duration) {
    let server = Server::start(limits).await;
    let started = Instant::now();
    let lines = drip_until_closed(server.connect().await).await;
    let took = started.elapsed();
    assert!(took >= bound, "closed after {took:?}");
    // A line every 50 ms: at least half of those due by `bound` were sent.
    let due = (bound.as_millis() / 50) as usize;
    assert!(
        lines >= due / 2,
        "the client stopped sending: {lines} lines"
    );
}

#[tokio::test]
async fn a_slowloris_head_is_cut_off_at_the_header_timeout() {
    let timeout = Duration::from_millis(300);
    assert_drip_cut_off_after(limits(4, timeout, PATIENCE), timeout).await;
}

#[tokio::test]
async fn a_kept_alive_connection_is_closed_once_idle() {
    let server = Server::start(limits(4, Duration::from_millis(300), PATIENCE)).await;
    let mut s = server.connect().await;
    // Two requests on one connection: it is kept alive between them.
    scrape(&mut s).await;
    scrape(&mut s).await;
    let idle_from = Instant::now();
    assert_eq!(closed_by_server(&mut s).await, 0);
    assert!(idle_from.elapsed() >= Duration::from_millis(250));
}

#[tokio::test]
async fn no_connection_outlives_its_max_age() {
    let max_age = Duration::from_millis(400);
    // The header timeout alone would let the drip go on for the whole test.
    assert_drip_cut_off_after(limits(4, PATIENCE, max_age), max_age).await;
}
