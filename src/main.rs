//! The `sessiond` binary: `serve` (default), `migrate`, `healthcheck`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sessiond::app::{migrate_only, Application};
use sessiond::config::Settings;

/// The system allocator, with scrypt's 32 MiB buffers on huge pages (see the module).
#[global_allocator]
static ALLOCATOR: sessiond::crypto::scratch::Allocator = sessiond::crypto::scratch::Allocator;

#[derive(Parser)]
#[command(
    name = "sessiond",
    version,
    about = "Better Auth-compatible session service"
)]
struct Cli {
    /// TOML configuration file (default: config/default.toml when present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Exit 0 if the local service answers `GET /healthz`.
    Healthcheck,
    /// Read a service API key on standard input (one line) and print the hash to put in
    /// `service_api.keys` (the key is never an argument: it would show in process lists).
    HashKey,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Some(Command::HashKey)) {
        return hash_key();
    }
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sessiond: {e}");
            return ExitCode::from(2);
        }
    };
    let telemetry = match sessiond::telemetry::init(&settings) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("sessiond: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = match Application::build(settings).await {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("sessiond: {e}");
                    return ExitCode::FAILURE;
                }
            };
            if let Ok(addr) = app.local_addr() {
                tracing::info!(%addr, "sessiond listening");
            }
            let ran = app.run_until_stopped().await;
            // The spans of the last requests are sent before the process ends.
            tokio::task::spawn_blocking(move || telemetry.shutdown())
                .await
                .ok();
            match ran {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("sessiond: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Migrate => match migrate_only(&settings).await {
            Ok(()) => {
                println!("migrations applied");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("sessiond: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Healthcheck => healthcheck(&settings).await,
        Command::HashKey => hash_key(),
    }
}

/// A minimal HTTP/1.1 GET over loopback, so container images need no curl.
async fn healthcheck(s: &Settings) -> ExitCode {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = if s.host == "0.0.0.0" || s.host == "::" {
        "127.0.0.1"
    } else {
        s.host.as_str()
    };
    let Ok(mut conn) = tokio::net::TcpStream::connect((host, s.port)).await else {
        eprintln!("sessiond: healthcheck: cannot connect to {host}:{}", s.port);
        return ExitCode::FAILURE;
    };
    let req = format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let mut buf = Vec::new();
    if conn.write_all(req.as_bytes()).await.is_err() || conn.read_to_end(&mut buf).await.is_err() {
        return ExitCode::FAILURE;
    }
    if buf.starts_with(b"HTTP/1.1 200") {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `sessiond hash-key`: the SHA-256 (hex) of the key read on standard input.
fn hash_key() -> ExitCode {
    let mut line = String::new();
    if std::io::stdin().read_line(&mut line).is_err() {
        eprintln!("sessiond: could not read the key on standard input");
        return ExitCode::from(2);
    }
    let key = line.trim_end_matches(['\r', '\n']);
    if key.chars().count() < sessiond::config::MIN_KEY_LEN || key.trim() != key {
        eprintln!(
            "sessiond: an API key must be at least {} characters with no surrounding spaces (e.g. openssl rand -base64 32)",
            sessiond::config::MIN_KEY_LEN
        );
        return ExitCode::from(2);
    }
    println!("{}", sessiond::config::hash_key(key));
    ExitCode::SUCCESS
}
