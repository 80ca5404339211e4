//! # actlog-server
//!
//! The HTTP face of actlog: the JSON API (docs/API.md), keys and roles,
//! the recorder and live bus, Server-Sent Events and WebSocket streams,
//! export, settings, metrics and the embedded web UI. It knows nothing of
//! bytes on disk: storage is `actlog_engine::Log`, read on the server's
//! read threads (`read_pool.rs`) and written from `spawn_blocking`.
//!
//! [`build_router`] makes the whole API for an [`AppState`]; [`serve`] runs it
//! with the lifecycle of `actlog serve` (start event, retention task, signal
//! handling, graceful shutdown).

#![recursion_limit = "256"]

pub mod auth;
pub mod bus;
pub mod cli;
pub mod combine;
pub mod csrf;
pub mod demo;
pub mod env_secret;
pub mod error;
pub mod heap;
pub mod ingest_json;
pub mod json;
pub mod keys;
pub mod listener;
pub mod metrics;
pub mod openapi;
pub mod params;
pub mod read_pool;
pub mod recorder;
pub mod routes;
pub mod settings;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use actlog_engine::{Config, Log, NewRecord};
use anyhow::Context as _;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse as _, Response};
use axum::Router;
use tokio::sync::{watch, Semaphore};

use crate::auth::{Caller, CookiePolicy, FailureCoalescer, LoginCoalescer, Sessions};
use crate::bus::{Bus, Subscribers};
use crate::csrf::OriginPolicy;
use crate::keys::{KeyStore, Role};
use crate::listener::ConnLimits;
use crate::metrics::Metrics;
use crate::recorder::{Recorder, ACTOR};
use crate::settings::SettingsStore;

/// Default request body limit: a full batch of maximal events fits.
pub const DEFAULT_BODY_LIMIT: usize = 8 << 20;
/// Body limit of the small admin bodies (settings, keys).
pub const SMALL_BODY_LIMIT: usize = 64 << 10;
/// Body limit of `POST /session` (one token), before anyone is known.
pub const SESSION_BODY_LIMIT: usize = 4 << 10;
/// Default time for a request body to arrive.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything a request handler can reach.
#[derive(Debug)]
pub struct App {
    /// Ingest, internal events, the log and the bus.
    pub recorder: Recorder,
    /// API keys.
    pub keys: KeyStore,
    /// Web UI sessions.
    pub sessions: Sessions,
    /// Settings.
    pub settings: SettingsStore,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Failed-authentication coalescing (per source, budgeted).
    pub failures: FailureCoalescer,
    /// Sign-in coalescing (per key).
    pub logins: LoginCoalescer,
    /// Flips to `true` when the server shuts down (ends live streams).
    pub shutdown: watch::Receiver<bool>,
    /// Largest accepted request body.
    pub body_limit: usize,
    /// Longest time for a request body to arrive.
    pub body_timeout: Duration,
    /// Bodies being read and parsed at once (each may hold `body_limit`
    /// bytes and several times that while parsed).
    pub body_permits: Semaphore,
    /// The cap on live streams.
    pub subscribers: Subscribers,
    /// The rules for cookie-authenticated requests.
    pub origin: OriginPolicy,
    /// The session cookie's name and attributes.
    pub cookie: CookiePolicy,
}

/// Shared state (a cheap clone).
pub type AppState = Arc<App>;

impl App {
    /// The log.
    pub fn log(&self) -> &Log {
        self.recorder.log()
    }
}

/// Content-Security-Policy of every response: nothing inline, nothing foreign.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Identifies the caller, records rejected credentials (coalesced), applies
/// the cross-origin rules to cookie-authenticated requests ([`csrf`]), runs
/// the handler with the caller's label as the request's actor, and adds the
/// security headers (and `Cache-Control: no-store` to every API answer).
async fn context(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    let (caller, credentials) = auth::identify(req.headers(), &app.keys, &app.sessions, app.cookie);
    let api = req.uri().path().starts_with("/api/");
    let mut resp = match app
        .origin
        .check(req.method(), req.uri(), req.headers(), credentials)
    {
        Err(e) => e.into_response(),
        Ok(()) => {
            if let Caller::Rejected = caller {
                app.metrics.auth_failures.fetch_add(1, Ordering::Relaxed);
                let source = req
                    .extensions()
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|c| c.0.ip())
                    .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
                app.failures
                    .failure(&app.recorder, "auth.key_rejected", source);
            }
            let actor = match &caller {
                Caller::Key(p) => p.key.label.clone(),
                _ => actlog_engine::SYSTEM_ACTOR.to_string(),
            };
            req.extensions_mut().insert(caller);
            ACTOR.scope(actor, next.run(req)).await
        }
    };
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if api {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// The whole API and UI for `app`.
pub fn build_router(app: AppState) -> Router {
    routes::router()
        .layer(middleware::from_fn_with_state(app.clone(), context))
        .with_state(app)
}

/// How `actlog serve` runs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Data directory.
    pub data: PathBuf,
    /// Listen address.
    pub listen: String,
    /// Fill an empty log with sample activity.
    pub demo: bool,
    /// How often retention runs.
    pub retention_interval: Duration,
    /// Request body limit.
    pub body_limit: usize,
    /// Longest time for a request body to arrive.
    pub body_timeout: Duration,
    /// Connection cap and timeouts.
    pub limits: ConnLimits,
    /// Live streams open at once.
    pub max_subscribers: usize,
    /// The URL browsers use (`--public-url`), if set: the own origin of the
    /// cross-origin rules, and `https://` turns on the secure cookie.
    pub public_url: Option<String>,
    /// `Secure` + `__Host-` session cookie (served behind TLS).
    pub secure_cookie: bool,
    /// `ACTLOG_ADMIN_TOKEN`, if set.
    pub admin_token: Option<String>,
    /// The "minute" authentication records are coalesced over
    /// ([`auth::COALESCE_WINDOW`]; shorter only for tests).
    pub auth_window: Duration,
}

impl ServeConfig {
    /// The defaults of `actlog serve` for `data`.
    pub fn new(data: PathBuf) -> Self {
        ServeConfig {
            data,
            listen: "127.0.0.1:8470".into(),
            demo: false,
            retention_interval: Duration::from_secs(60),
            body_limit: DEFAULT_BODY_LIMIT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            limits: ConnLimits::default(),
            max_subscribers: bus::DEFAULT_MAX_SUBSCRIBERS,
            public_url: None,
            secure_cookie: false,
            admin_token: None,
            auth_window: auth::COALESCE_WINDOW,
        }
    }
}

/// Opens everything in `cfg.data` and returns the state plus the shutdown switch.
pub fn open_app(cfg: &ServeConfig) -> anyhow::Result<(AppState, watch::Sender<bool>)> {
    let log = Log::open(&cfg.data, Config::default())
        .with_context(|| format!("cannot open the log in {}", cfg.data.display()))?;
    report_recovery(&log);
    warn_if_shared(&cfg.data);
    let keys = KeyStore::open(&cfg.data)?;
    let settings = SettingsStore::open(&cfg.data)?;
    let s = settings.get();
    log.set_retention(s.engine_retention())
        .context("the retention settings in settings.json are invalid")?;
    let origin = OriginPolicy::new(cfg.public_url.as_deref())
        .map_err(|m| anyhow::anyhow!("--public-url: {m}"))?;
    let cookie = CookiePolicy {
        secure: cfg.secure_cookie || origin.is_https(),
    };
    let metrics = Arc::new(Metrics::default());
    let recorder = Recorder::new(log, Bus::default(), metrics.clone(), s.enabled);
    let (tx, rx) = watch::channel(false);
    let parsers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let app = Arc::new(App {
        recorder,
        keys,
        sessions: Sessions::default(),
        settings,
        failures: FailureCoalescer::new(cfg.auth_window),
        logins: LoginCoalescer::new(cfg.auth_window),
        shutdown: rx,
        body_limit: cfg.body_limit,
        body_timeout: cfg.body_timeout,
        body_permits: Semaphore::new(parsers * 2),
        subscribers: Subscribers::new(cfg.max_subscribers, metrics.clone()),
        origin,
        cookie,
        metrics,
    });
    Ok((app, tx))
}

/// New data directories are created 0700 (files 0600); one made
/// otherwise, by hand or by an older version, is left as it is but named.
fn warn_if_shared(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(m) = std::fs::metadata(dir) {
        let mode = m.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(dir = %dir.display(), mode = format!("{:o}", mode & 0o777),
                "the data directory is readable by other users; `chmod 700` it (it holds the audit log and key hashes)");
        }
    }
}

fn report_recovery(log: &Log) {
    let r = log.recovery_report();
    if let Some(t) = &r.torn_tail {
        tracing::warn!(file = %t.file.display(), offset = t.offset, bytes = t.bytes_dropped,
            records = t.records_dropped, reason = %t.reason, "recovery cut a torn tail (unacknowledged writes)");
    }
    for (f, why) in &r.rebuilt_indexes {
        tracing::warn!(file = %f.display(), problem = %why, "rebuilt index file");
    }
    for f in &r.removed_temp_files {
        tracing::info!(file = %f.display(), "removed leftover temporary file");
    }
    for f in &r.deleted_below_watermark {
        tracing::info!(file = %f.display(), "finished deleting a segment dropped by retention");
    }
    tracing::info!(records = r.records, segments = r.segments, "log opened");
}

/// Ensures an admin key exists: from `ACTLOG_ADMIN_TOKEN`, or generated and
/// printed once. Errors if the env token is too short.
pub fn bootstrap_admin(app: &App, env_token: Option<&str>) -> anyhow::Result<Option<String>> {
    if !app.keys.is_empty() {
        if env_token.is_some() {
            tracing::info!("ACTLOG_ADMIN_TOKEN is ignored: keys already exist");
        }
        return Ok(None);
    }
    let now = json::format_ts(actlog_engine::now_us());
    match env_token {
        Some(t) => {
            keys::check_admin_token(t).map_err(anyhow::Error::msg)?;
            let key = app.keys.create_with_token("admin", Role::Admin, t, &now)?;
            record_key_created(app, &key);
            Ok(None)
        }
        None => {
            let (key, token) = app.keys.create("admin", Role::Admin, &now)?;
            record_key_created(app, &key);
            Ok(Some(token))
        }
    }
}

fn record_key_created(app: &App, key: &keys::KeyInfo) {
    let mut r = keys::key_record(keys::KeyEvent::Created, key, "");
    r.actor = Some(actlog_engine::SYSTEM_ACTOR.into());
    app.recorder.record(r);
}

/// Runs `actlog serve` until SIGTERM/SIGINT. `on_listen` gets the bound
/// address (tests listen on port 0).
pub async fn serve(cfg: ServeConfig, on_listen: impl FnOnce(SocketAddr)) -> anyhow::Result<()> {
    let (app, shutdown_tx) = open_app(&cfg)?;
    if cfg.demo {
        let log = app.log().clone();
        let n = tokio::task::spawn_blocking(move || demo::fill_if_empty(&log)).await??;
        if n > 0 {
            tracing::info!(records = n, "filled the empty log with demo activity");
        }
    }
    // Before anyone can learn the address: a signal that comes as soon as
    // the server is up must shut it down cleanly, not kill it.
    let stop = shutdown_signal();
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    app.recorder
        .record_durable(
            NewRecord::new(
                "system",
                "system.server_started",
                format!("actlog server started on {addr}"),
            ),
            false,
        )
        .await;
    // After `system.server_started`, which is the first record of every run
    // (only a demo fill's backdated history comes before it).
    let generated = bootstrap_admin(&app, cfg.admin_token.as_deref())?;
    on_listen(addr);
    println!("actlog is listening on http://{addr}/");
    match &generated {
        Some(token) => println!(
            "Sign in at http://{addr}/ with this admin API key (shown only now, store it safely):\n\n    {token}\n"
        ),
        None => println!("Sign in at http://{addr}/ with an admin API key."),
    }

    let retention = tokio::spawn(retention_task(app.clone(), cfg.retention_interval));
    let router = build_router(app.clone());
    let app_for_signal = app.clone();
    let graceful = async move {
        stop.await;
        // The first thing done on SIGTERM/SIGINT.
        app_for_signal
            .recorder
            .record_durable(
                NewRecord::new(
                    "system",
                    "system.server_shutting_down",
                    "actlog server shutting down",
                ),
                false,
            )
            .await;
        let _ = shutdown_tx.send(true);
    };
    listener::serve(listener, router, cfg.limits, app.metrics.clone(), graceful).await;
    retention.abort();
    let _ = retention.await;
    // The open minute ends here: its records are written before the log
    // closes (queued ones could be lost with the recorder's thread).
    let now = std::time::Instant::now();
    let due = app.failures.due(now, true).into_iter();
    for r in due.chain(app.logins.due(now, true)) {
        app.recorder.record_durable(r, false).await;
    }
    let log = app.log().clone();
    drop(app);
    tokio::task::spawn_blocking(move || log.close())
        .await?
        .context("closing the log")?;
    tracing::info!("stopped");
    Ok(())
}

/// Installs the SIGTERM and SIGINT handlers at once and returns what
/// completes on the first of them. (Installed only when first polled, as
/// before, they left a window after start-up in which SIGINT killed the
/// server without its shutdown record.)
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut t), Ok(mut i)) => {
                tokio::select! {
                    _ = t.recv() => {},
                    _ = i.recv() => {},
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}

/// Enforces retention every `every`, records what it dropped, writes the
/// end-of-minute records of coalesced authentication (at most one tick
/// after the minute ends; the tick is never longer than the minute), drops
/// expired sessions, and after a tick with appends or
/// queries gives memory back: freed heap ([`heap::trim`]) and the mapped
/// file pages reads and seals touched ([`Log::release_mapped_pages`]; the
/// page cache keeps them).
async fn retention_task(app: AppState, every: Duration) {
    let every_tick = every.min(COALESCE_TICK).min(app.failures.window());
    let mut tick = tokio::time::interval(every_tick);
    let mut since_retention = Duration::ZERO;
    let activity = |app: &AppState| {
        (
            app.log().io_stats().records_appended,
            app.metrics.query_latency.count(),
        )
    };
    let mut seen = activity(&app);
    loop {
        tick.tick().await;
        app.failures.flush(&app.recorder, false);
        app.logins.flush(&app.recorder, false);
        app.sessions.prune();
        let now = activity(&app);
        if now != seen {
            seen = now;
            let log = app.log().clone();
            let _ = tokio::task::spawn_blocking(move || {
                heap::trim();
                if let Err(e) = log.release_mapped_pages() {
                    tracing::debug!(error = %e, "could not release mapped pages");
                }
            })
            .await;
        }
        since_retention += every_tick;
        if since_retention < every {
            continue;
        }
        since_retention = Duration::ZERO;
        routes::admin::run_retention(&app).await;
    }
}

const COALESCE_TICK: Duration = Duration::from_secs(5);
