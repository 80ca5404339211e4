//! The `actlog` command line: `serve` and `keys`. Configuration precedence:
//! flag, then environment variable, then default.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// actlog: a self-hosted activity / audit log.
#[derive(Debug, Parser)]
#[command(name = "actlog", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve {
        /// Data directory.
        #[arg(long, env = "ACTLOG_DATA", default_value = "./actlog-data")]
        data: PathBuf,
        /// Address to listen on.
        #[arg(long, env = "ACTLOG_LISTEN", default_value = "127.0.0.1:8470")]
        listen: String,
        /// Fill an empty log with realistic sample activity.
        #[arg(long)]
        demo: bool,
        /// Seconds between retention runs.
        #[arg(long, env = "ACTLOG_RETENTION_INTERVAL", default_value_t = 60)]
        retention_interval: u64,
        /// Largest request body, bytes.
        #[arg(long, env = "ACTLOG_BODY_LIMIT", default_value_t = crate::DEFAULT_BODY_LIMIT)]
        body_limit: usize,
        /// Seconds a request body may take to arrive (408 after).
        #[arg(long, env = "ACTLOG_BODY_TIMEOUT", default_value_t = crate::DEFAULT_BODY_TIMEOUT.as_secs())]
        body_timeout: u64,
        /// Connections served at once; more get a 503 and are closed.
        #[arg(long, env = "ACTLOG_MAX_CONNECTIONS", default_value_t = crate::listener::DEFAULT_MAX_CONNECTIONS)]
        max_connections: usize,
        /// Live streams (SSE and WebSocket) open at once; more get a 503.
        #[arg(long, env = "ACTLOG_MAX_SUBSCRIBERS", default_value_t = crate::bus::DEFAULT_MAX_SUBSCRIBERS)]
        max_subscribers: usize,
        /// Seconds a client may take to send a request's headers.
        #[arg(long, env = "ACTLOG_HEADER_TIMEOUT", default_value_t = 10)]
        header_timeout: u64,
        /// Seconds a connection may stay silent (no byte either way) before it is closed.
        #[arg(long, env = "ACTLOG_IDLE_TIMEOUT", default_value_t = 60)]
        idle_timeout: u64,
        /// The URL browsers reach the server at, such as
        /// https://log.example.org (behind a reverse proxy): the web UI's
        /// requests must come from this origin, and https:// turns on the
        /// secure session cookie.
        #[arg(long, env = "ACTLOG_PUBLIC_URL")]
        public_url: Option<String>,
        /// Send the session cookie as `__Host-actlog_session` with `Secure`
        /// (set when browsers reach the server over HTTPS).
        #[arg(long, env = "ACTLOG_SECURE_COOKIE")]
        secure_cookie: bool,
        /// For testing: seconds authentication records are coalesced over
        /// (the "minute" of docs/API.md). Hidden; see docs/OPERATIONS.md.
        #[arg(
            long,
            env = "ACTLOG_AUTH_WINDOW_SECS",
            default_value_t = 60,
            hide = true
        )]
        auth_window_secs: u64,
    },
    /// Manage API keys offline (the server must be stopped).
    Keys {
        /// Data directory.
        #[arg(
            long,
            env = "ACTLOG_DATA",
            default_value = "./actlog-data",
            global = true
        )]
        data: PathBuf,
        /// What to do with keys.
        #[command(subcommand)]
        action: KeysAction,
    },
}

/// `actlog keys ...`
#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Create a key and print its token (shown only once).
    Create {
        /// Label (also the actor of what the key records).
        #[arg(long)]
        label: String,
        /// admin, writer or reader.
        #[arg(long)]
        role: String,
    },
    /// List keys (never tokens).
    List,
    /// Revoke a key by id.
    Revoke {
        /// The key id (`key_...`).
        id: String,
    },
}
