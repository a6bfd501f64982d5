//! The daemon's own HTTP listener (`[metrics] listen`), bounded against the
//! clients it cannot choose.
//!
//! A plain `axum::serve` accepts every connection and keeps each one for as long
//! as the client likes, so a few thousand idle sockets exhaust the process's file
//! descriptors; the accept loop then fails with EMFILE, and so do the sweep's own
//! sockets and the database. Here:
//!
//! - at most [`Limits::max_connections`] connections are open at once. A slot is
//!   taken *before* `accept`, so connections beyond the cap wait in the kernel's
//!   listen backlog, costing the daemon no descriptor, and are served in order as
//!   slots free up (rather than accepted and closed: a scraper queued behind a
//!   burst gets its answer late instead of an error);
//! - a connection must send a complete request head within
//!   [`Limits::header_read_timeout`] (slowloris). hyper arms the same timer when a
//!   kept-alive connection goes idle, so it is also the idle timeout;
//! - no connection lives longer than [`Limits::max_connection_age`], whatever it
//!   does;
//! - an accept error (EMFILE, ENFILE, ECONNABORTED…) never ends or spins the
//!   loop: it waits a little (doubling up to [`Limits::accept_backoff_max`]) and
//!   tries again.
//!
//! Only HTTP/1 is spoken: a scraper needs nothing else, and it keeps the surface small.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// The bounds of one listener; [`Limits::default`] is what the daemon uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Time to send a request head, and the most a kept-alive connection may idle.
    pub header_read_timeout: Duration,
    /// The longest any connection is kept, busy or not.
    pub max_connection_age: Duration,
    /// The first wait after an accept error; doubled on each error in a row.
    pub accept_backoff_min: Duration,
    /// The longest wait between two failing accepts.
    pub accept_backoff_max: Duration,
}

impl Default for Limits {
    /// 64 connections: a handful of scrapers and health checks need a few; 64
    /// sockets are a small share of any descriptor limit the unit sets. A scrape
    /// sends its request at once and is answered in milliseconds, so 5 s for the
    /// head and 30 s for the whole connection only ever cut off idle or hostile clients.
    fn default() -> Self {
        Limits {
            max_connections: 64,
            header_read_timeout: Duration::from_secs(5),
            max_connection_age: Duration::from_secs(30),
            accept_backoff_min: Duration::from_millis(10),
            accept_backoff_max: Duration::from_secs(1),
        }
    }
}

/// Where connections come from: a [`TcpListener`], or a stand-in in tests.
pub trait Accept: Send {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn accept(&mut self) -> impl Future<Output = io::Result<Self::Io>> + Send;
}

impl Accept for TcpListener {
    type Io = TcpStream;
    async fn accept(&mut self) -> io::Result<TcpStream> {
        TcpListener::accept(self).await.map(|(stream, _)| stream)
    }
}

/// Serves `router` on connections from `acceptor` within `limits` until
/// `shutdown` is cancelled. Connections still open then are asked to finish
/// their request and close (they are bounded by their age either way).
pub async fn serve<A: Accept>(
    mut acceptor: A,
    router: Router,
    shutdown: CancellationToken,
    limits: Limits,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let mut backoff = Backoff::new(limits);
    loop {
        let permit = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break, // never closed
            },
        };
        let accepted = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            accepted = acceptor.accept() => accepted,
        };
        let io = match accepted {
            Ok(io) => {
                backoff.recovered();
                io
            }
            Err(e) => {
                drop(permit);
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = backoff.wait(&e) => continue,
                }
            }
        };
        let conn =
            builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(router.clone()));
        let stop = shutdown.clone();
        let age = limits.max_connection_age;
        tokio::spawn(async move {
            let _slot = permit;
            let mut conn = std::pin::pin!(conn);
            let deadline = tokio::time::sleep(age);
            tokio::pin!(deadline);
            let mut stopping = false;
            loop {
                tokio::select! {
                    ended = conn.as_mut() => {
                        if let Err(e) = ended {
                            debug!(error = %e, "metrics connection ended");
                        }
                        break;
                    }
                    _ = &mut deadline => {
                        debug!(max_age = ?age, "metrics connection closed: too old");
                        break;
                    }
                    _ = stop.cancelled(), if !stopping => {
                        stopping = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
        });
    }
}

/// The wait between failing accepts: doubling from the minimum to the maximum,
/// back to the minimum after a success. Logged once per run of errors.
struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
    failures: u64,
}

impl Backoff {
    fn new(limits: Limits) -> Self {
        Backoff {
            min: limits.accept_backoff_min,
            max: limits.accept_backoff_max.max(limits.accept_backoff_min),
            next: limits.accept_backoff_min,
            failures: 0,
        }
    }

    async fn wait(&mut self, error: &io::Error) {
        if self.failures == 0 {
            warn!(%error, "metrics listener cannot accept a connection; retrying with backoff");
        }
        self.failures += 1;
        let pause = self.next;
        self.next = (self.next * 2).min(self.max);
        tokio::time::sleep(pause).await;
    }

    fn recovered(&mut self) {
        if self.failures > 0 {
            info!(
                failures = self.failures,
                "metrics listener accepts connections again"
            );
        }
        self.failures = 0;
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A listener that fails its first `errors` accepts with EMFILE.
    struct OutOfDescriptors {
        inner: TcpListener,
        errors: usize,
        calls: Arc<AtomicUsize>,
    }

    impl Accept for OutOfDescriptors {
        type Io = TcpStream;
        async fn accept(&mut self) -> io::Result<TcpStream> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.errors > 0 {
                self.errors -= 1;
                return Err(io::Error::from_raw_os_error(libc::EMFILE));
            }
            self.inner.accept().await.map(|(s, _)| s)
        }
    }

    #[tokio::test]
    async fn emfile_backs_off_and_the_loop_keeps_serving() {
        let inner = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = inner.local_addr().unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let limits = Limits {
            accept_backoff_min: Duration::from_millis(20),
            accept_backoff_max: Duration::from_millis(40),
            ..Limits::default()
        };
        let stop = CancellationToken::new();
        let router = Router::new().route("/", axum::routing::get(|| async { "up" }));
        let started = Instant::now();
        let server = tokio::spawn(serve(
            OutOfDescriptors {
                inner,
                errors: 4,
                calls: calls.clone(),
            },
            router,
            stop.clone(),
            limits,
        ));
        let answer = tokio::time::timeout(Duration::from_secs(10), async {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        })
        .await
        .expect("answered after the EMFILE errors");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("up"), "{answer}");
        // Four failures, the accept that served us, maybe the next one waiting.
        let calls = calls.load(Ordering::SeqCst);
        assert!((5..=6).contains(&calls), "{calls} accept calls");
        // It waited 20 + 40 + 40 + 40 ms between them rather than spinning.
        assert!(
            started.elapsed() >= Duration::from_millis(140),
            "{:?}",
            started.elapsed()
        );
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("stops on cancel")
            .unwrap();
    }
}
