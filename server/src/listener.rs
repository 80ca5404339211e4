//! Accepting connections: how many may be open at once, how long a client
//! may take to send its headers or stay silent, and the graceful end.
//!
//! * At most [`ConnLimits::max_connections`] connections are served at
//!   once. Beyond that a connection gets one `503` JSON answer and is closed
//!   (at most [`REFUSING_AT_ONCE`] such answers are in flight; past that a
//!   connection is simply closed), so a flood of sockets cannot take the
//!   file descriptors that segment and index files need.
//! * A client must send a request's whole header block within
//!   [`ConnLimits::header_timeout`] of its first byte, and a new
//!   connection's first request within the same time: trickling headers (slowloris) or
//!   sending nothing does not hold a connection. An HTTP/1 header block is
//!   at most [`HTTP1_MAX_BUF`]; an HTTP/2 connection has at most
//!   [`HTTP2_MAX_STREAMS`] streams with [`HTTP2_WINDOW`]-byte windows.
//! * A connection on which no byte moves either way for
//!   [`ConnLimits::idle_timeout`] is closed, kept-alive or mid-request.
//!   Live streams are never idle that long: SSE sends a heartbeat and the
//!   WebSocket a ping every 15 s. Request bodies have their own deadline
//!   (`routes::read_body`).
//!
//! The permit of a connection lives inside its socket, so an upgraded
//! WebSocket keeps counting until it closes.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt as _;

use crate::metrics::Metrics;

/// Bounds on connections (`actlog serve --max-connections`, ...).
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// Connections served at once.
    pub max_connections: usize,
    /// Longest time to send a request's header block.
    pub header_timeout: Duration,
    /// Longest time without a byte in either direction.
    pub idle_timeout: Duration,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Default of [`ConnLimits::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 2048;

/// Refusals being written at once; more connections beyond the cap are
/// closed without an answer.
pub const REFUSING_AT_ONCE: usize = 64;

/// Read buffer of an HTTP/1 connection, and so the largest header block:
/// above hyper's fixed 64 KiB bound on the request target, so that a long
/// URI is still answered 414 (not 431).
pub const HTTP1_MAX_BUF: usize = 96 << 10;
/// Concurrent streams of one HTTP/2 connection.
pub const HTTP2_MAX_STREAMS: u32 = 32;
/// Flow-control window of one HTTP/2 stream (the connection's is 4×).
pub const HTTP2_WINDOW: u32 = 64 << 10;

/// How long a graceful shutdown waits for open connections.
const DRAIN: Duration = Duration::from_secs(10);

/// The answer to a connection beyond the cap.
static REFUSAL: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
    let body = r#"{"error":{"code":"unavailable","message":"the server has as many connections open as it allows; retry shortly"}}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         cache-control: no-store\r\nretry-after: 1\r\nconnection: close\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
});

/// Serves `router` on `listener` until `shutdown` completes, then lets open
/// connections finish (at most [`DRAIN`]).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnLimits,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let refusing = Arc::new(Semaphore::new(REFUSING_AT_ONCE));
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // No hyper timers: the watchdog below applies the header timeout to
    // request heads (a timer armed per request cost ~5 % of the request
    // rate). The read buffer bounds a header block in memory (hyper's
    // default lets ~400 KiB of unfinished headers sit per connection).
    builder.http1().max_buf_size(HTTP1_MAX_BUF);
    builder
        .http2()
        // Few streams per connection and small flow-control windows: a
        // client cannot park megabytes in streams the server has not read.
        .max_concurrent_streams(HTTP2_MAX_STREAMS)
        .initial_stream_window_size(HTTP2_WINDOW)
        .initial_connection_window_size(HTTP2_WINDOW * 4)
        .max_header_list_size(16 << 10);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors, or the peer gave up before
                    // the accept: wait a moment rather than spin.
                    tracing::debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        // Answers go out as soon as they are written: a response is one
        // write, so Nagle's algorithm could only hold it back.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            metrics.connections_refused.fetch_add(1, Ordering::Relaxed);
            refuse(tcp, &refusing);
            continue;
        };
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Watched {
            inner: tcp,
            activity: activity.clone(),
            _permit: ConnPermit::new(permit, metrics.clone()),
        });
        let router = router.clone();
        let requests = activity.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            // In flight from here until its answer's body is done (or dropped).
            let guard = InFlight::start(requests.clone());
            let answer = router.clone().oneshot(req);
            async move {
                let resp = answer.await?;
                // An answer of known length is written at once (a client
                // that does not read it is cut by the byte-idle rule); a
                // streamed one (export, SSE) stays in flight until its end.
                if axum::body::HttpBody::size_hint(resp.body())
                    .exact()
                    .is_some()
                {
                    drop(guard);
                    return Ok::<_, std::convert::Infallible>(resp);
                }
                Ok(resp.map(|body| {
                    axum::body::Body::new(Guarded {
                        inner: body,
                        _guard: guard,
                    })
                }))
            }
        });
        let conn = graceful.watch(
            builder
                .serve_connection_with_upgrades(io, service)
                .into_owned(),
        );
        let idle = limits.idle_timeout;
        let first_byte = limits.header_timeout;
        let metrics = metrics.clone();
        tokio::spawn(async move {
            tokio::pin!(conn);
            loop {
                // Until the first byte arrives, a connection gets only the
                // header timeout (hyper's header timer starts with the first
                // byte): a silent socket holds a place no longer than a
                // slow header block does.
                let deadline = |a: &Activity| a.deadline(first_byte, idle);
                tokio::select! {
                    _ = &mut conn => return,
                    _ = tokio::time::sleep_until(deadline(&activity)) => {
                        if deadline(&activity) <= Instant::now() {
                            metrics.connections_idle_closed.fetch_add(1, Ordering::Relaxed);
                            return; // dropping the connection closes it
                        }
                    }
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!("closed connections still open after the shutdown grace period");
    }
}

/// File descriptors kept for the log's own files, beyond the connections.
pub const FD_RESERVE: u64 = 256;

/// Raises the soft limit on open files to the hard limit (many systems
/// start services at 1024, below the default connection cap), and warns when
/// `max_connections` plus [`FD_RESERVE`] still does not fit: the accept loop
/// survives running out, but segment and index opens would fail.
#[allow(unsafe_code)]
pub fn raise_fd_limit(max_connections: usize) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write only the struct given.
    let soft = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
        lim.rlim_cur
    };
    let needed = max_connections as u64 + FD_RESERVE;
    if soft < needed {
        tracing::warn!(
            limit = soft,
            needed,
            "the open-files limit is below --max-connections plus the log's own files; \
             raise it (LimitNOFILE=, ulimit -n) or lower --max-connections"
        );
    }
}

/// Writes [`REFUSAL`] and closes, reading (and dropping) what the client
/// sent meanwhile so the close does not reset the connection before the
/// answer is read.
fn refuse(mut tcp: TcpStream, refusing: &Arc<Semaphore>) {
    let Ok(permit) = refusing.clone().try_acquire_owned() else {
        return; // dropped: closed without an answer
    };
    tokio::spawn(async move {
        let _permit = permit;
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            tcp.write_all(&REFUSAL).await?;
            tcp.shutdown().await?;
            let mut sink = [0u8; 4096];
            let mut left: usize = 64 * 1024;
            while left > 0 {
                let n = tcp.read(&mut sink).await?;
                if n == 0 {
                    break;
                }
                left = left.saturating_sub(n);
            }
            Ok::<_, io::Error>(())
        })
        .await;
    });
}

/// When a byte last moved on a connection, and its requests: how many are
/// in flight and when one last started or ended (ms since `start`).
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
    in_flight: std::sync::atomic::AtomicUsize,
    requests_ms: AtomicU64,
    any_request: std::sync::atomic::AtomicBool,
    /// When the first byte arrived while no request was in flight (a
    /// request head being received), or [`NO_HEAD`].
    head_ms: AtomicU64,
}

/// [`Activity::head_ms`] when no request head is being received.
const NO_HEAD: u64 = u64::MAX;

impl Activity {
    fn new() -> Self {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: std::sync::atomic::AtomicUsize::new(0),
            requests_ms: AtomicU64::new(0),
            any_request: std::sync::atomic::AtomicBool::new(false),
            head_ms: AtomicU64::new(NO_HEAD),
        }
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn touch(&self) {
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// A byte arrived: with no request in flight, it starts a request head
    /// (or HTTP/2 frames between requests).
    fn touch_read(&self) {
        let now = self.now_ms();
        self.last_ms.store(now, Ordering::Relaxed);
        if self.in_flight.load(Ordering::Acquire) == 0
            && self.head_ms.load(Ordering::Relaxed) == NO_HEAD
        {
            self.head_ms.store(now, Ordering::Relaxed);
        }
    }

    /// When the connection is to be closed:
    /// * no request yet: `first` after it opened (a silent socket, or an
    ///   HTTP/2 client that only sends PINGs, gets the header timeout);
    /// * otherwise `idle` after the last byte moved either way, and, with
    ///   no request in flight, `idle` after the last one ended (PINGs and
    ///   other frames do not keep an unused HTTP/2 connection) and `first`
    ///   after the first byte of the next request head (slowloris on a
    ///   kept-alive connection).
    fn deadline(&self, first: Duration, idle: Duration) -> Instant {
        if !self.any_request.load(Ordering::Acquire) {
            return self.start + first;
        }
        let bytes = self.last() + idle;
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return bytes;
        }
        let at = |ms: u64| self.start + Duration::from_millis(ms);
        let requests = at(self.requests_ms.load(Ordering::Relaxed)) + idle;
        let head = match self.head_ms.load(Ordering::Relaxed) {
            NO_HEAD => requests,
            ms => at(ms) + first,
        };
        bytes.min(requests).min(head)
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// One request in flight on a connection, from its start until its
/// answer's body ends or is dropped.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(a: Arc<Activity>) -> Self {
        a.requests_ms.store(a.now_ms(), Ordering::Relaxed);
        a.head_ms.store(NO_HEAD, Ordering::Relaxed);
        a.in_flight.fetch_add(1, Ordering::AcqRel);
        a.any_request.store(true, Ordering::Release);
        InFlight(a)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.requests_ms.store(self.0.now_ms(), Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An answer's body that keeps its request [`InFlight`] while it is sent.
struct Guarded {
    inner: axum::body::Body,
    _guard: InFlight,
}

impl axum::body::HttpBody for Guarded {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// A connection's place under the cap, counted in the metrics while held.
struct ConnPermit {
    _permit: OwnedSemaphorePermit,
    metrics: Arc<Metrics>,
}

impl ConnPermit {
    fn new(permit: OwnedSemaphorePermit, metrics: Arc<Metrics>) -> Self {
        metrics.connections_open.fetch_add(1, Ordering::Relaxed);
        ConnPermit {
            _permit: permit,
            metrics,
        }
    }
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        self.metrics
            .connections_open
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// A socket that notes each byte moved and holds the connection's permit.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
    _permit: ConnPermit,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch_read();
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            if *n > 0 {
                self.activity.touch();
            }
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = &r {
            if *n > 0 {
                self.activity.touch();
            }
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
