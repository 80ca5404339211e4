//! `actlog`: the actlog server and its offline key management.

use std::process::ExitCode;
use std::time::Duration;

use actlog_engine::{Config, Log};
use actlog_server::cli::{Cli, Command, KeysAction};
use actlog_server::keys::{key_record, KeyEvent, KeyStore, Role};
use actlog_server::listener::ConnLimits;
use actlog_server::{json, serve, ServeConfig};
use anyhow::Context as _;
use clap::Parser;

/// How long an idle blocking-pool thread lives (tokio's default is 10 s).
/// Each holds an allocator heap of its own: after a burst of 1,000 SSE
/// subscribers the pool's 127 threads kept ~150 MB resident until they
/// exited. Starting a thread costs ~50 µs, so a busy server loses nothing.
const BLOCKING_KEEP_ALIVE: Duration = Duration::from_secs(2);

#[global_allocator]
static GLOBAL: actlog_server::heap::Allocator = mimalloc::MiMalloc;

fn main() -> ExitCode {
    actlog_server::heap::configure();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ACTLOG_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Command::Serve {
            data,
            listen,
            demo,
            retention_interval,
            body_limit,
            body_timeout,
            max_connections,
            max_subscribers,
            header_timeout,
            idle_timeout,
            public_url,
            secure_cookie,
            auth_window_secs,
        } => {
            // Read once, then gone: the token must not stay readable in
            // /proc/<pid>/environ for the life of the server. (Still one
            // thread here: no one else reads the environment.)
            let Ok(admin_token) = actlog_server::env_secret::take("ACTLOG_ADMIN_TOKEN") else {
                eprintln!("error: ACTLOG_ADMIN_TOKEN is not valid UTF-8");
                return ExitCode::from(2);
            };
            if let Some(t) = &admin_token {
                if let Err(m) = actlog_server::keys::check_admin_token(t) {
                    eprintln!("error: {m}");
                    return ExitCode::from(2);
                }
            }
            actlog_server::listener::raise_fd_limit(max_connections);
            let secs = |s: u64| Duration::from_secs(s.max(1));
            let cfg = ServeConfig {
                demo,
                listen,
                retention_interval: secs(retention_interval),
                body_limit,
                body_timeout: secs(body_timeout),
                limits: ConnLimits {
                    max_connections,
                    header_timeout: secs(header_timeout),
                    idle_timeout: secs(idle_timeout),
                },
                max_subscribers,
                public_url,
                secure_cookie,
                admin_token,
                auth_window: Duration::from_secs(auth_window_secs.max(1)),
                ..ServeConfig::new(data)
            };
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_keep_alive(BLOCKING_KEEP_ALIVE)
                .build()
                .context("cannot start the async runtime")
                .and_then(|rt| rt.block_on(serve(cfg, |_| {})))
        }
        Command::Keys { data, action } => keys(&data, action),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn keys(data: &std::path::Path, action: KeysAction) -> anyhow::Result<()> {
    // Taking the log's lock proves no server is running on this directory
    // (it would not see the change until restarted).
    let log = Log::open(data, Config::default()).map_err(|e| match e {
        actlog_engine::Error::Locked { .. } => anyhow::anyhow!(
            "a server is running on {}; stop it first, or manage keys through the HTTP API",
            data.display()
        ),
        other => anyhow::Error::new(other),
    })?;
    let store = KeyStore::open(data)?;
    match action {
        KeysAction::Create { label, role } => {
            let role: Role = role.parse().map_err(anyhow::Error::msg)?;
            let now = json::format_ts(actlog_engine::now_us());
            let (key, token) = store.create(&label, role, &now)?;
            log.append_one(&key_record(KeyEvent::Created, &key, " (offline)"))?;
            println!("created {} ({}, {})", key.id, key.label, role.as_str());
            println!("token (shown only now): {token}");
        }
        KeysAction::List => {
            for k in store.list() {
                println!(
                    "{}\t{}\t{}\t{}",
                    k.id,
                    k.role.as_str(),
                    k.created_at,
                    k.label
                );
            }
        }
        KeysAction::Revoke { id } => match store.revoke(&id)? {
            Some(key) => {
                log.append_one(&key_record(KeyEvent::Revoked, &key, " (offline)"))?;
                println!("revoked {}", key.id);
            }
            None => anyhow::bail!("no API key with id `{id}` (see `actlog keys list`)"),
        },
    }
    log.close()?;
    Ok(())
}
