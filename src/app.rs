//! Wiring: resolves the secret, opens the store, builds the router and serves it until
//! SIGINT/SIGTERM, draining in-flight requests.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;

use crate::clock::{Clock, SystemClock};
use crate::config::{AdditionalField, Environment, Settings, BETTER_AUTH_DEFAULT_SECRET};
use crate::crypto::secrets::SecretSet;
use crate::crypto::token::generate_id;
use crate::http::client::IpRules;
use crate::http::forward_auth::ForwardAuth;
use crate::http::origin::TrustedOrigins;
use crate::http::rate_limit::RateLimiter;
use crate::http::revocations::FeedAccess;
use crate::http::server::{self, Limits};
use crate::http::{openapi_document, ops_router, router, AppState, Shared};
use crate::session::revocation::Revocations;
use crate::session::revoked_log::RevokedLog;
use crate::session::SessionService;
use crate::store::rate::RedisRateCounter;
use crate::store::redis_conn::RedisTarget;
use crate::store::sql::{connect, private_dir, with_read_replica, ExtraColumn, Shape};
use crate::store::{RedisOptions, RedisStore, Store};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad configuration.
    #[error("{0}")]
    Config(String),
    /// The database could not be opened or migrated.
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    /// The listener could not bind.
    #[error("listen: {0}")]
    Io(#[from] std::io::Error),
}

pub use crate::crypto::strength::{weak_secret, MIN_SECRET_LEN};

/// Refuses a guessable secret in production and warns about one in development; `what`
/// names it in the message.
fn check_strength(s: &Settings, what: &str, secret: &str) -> Result<(), StartError> {
    if let Some(problem) = weak_secret(secret) {
        if s.environment == Environment::Production {
            return Err(StartError::Config(format!(
                "{what} must be at least {MIN_SECRET_LEN} characters in production \
                 and not guessable: {problem}"
            )));
        }
        tracing::warn!("{what} is weak: {problem}");
    }
    Ok(())
}

/// The secrets to sign and encrypt with: the versioned `secrets` (the first signs; `secret`
/// is then Better Auth's legacy secret, which only decrypts `jwe` caches, unless it is
/// Better Auth's built-in default), else `secret`, else in development one generated once
/// into `<data_dir>/secret` (with a warning). Production refuses a missing secret, and a
/// weak one wherever it is.
pub fn resolve_secret(s: &Settings) -> Result<SecretSet, StartError> {
    if !s.secrets.is_empty() {
        let mut listed = Vec::with_capacity(s.secrets.len());
        for v in &s.secrets {
            let value = v.value.expose_secret();
            check_strength(s, &format!("secrets version {}", v.version), value)?;
            listed.push((v.version, value.to_owned()));
        }
        let legacy = Some(s.secret.expose_secret())
            .filter(|l| !l.is_empty() && *l != BETTER_AUTH_DEFAULT_SECRET);
        if let Some(l) = legacy {
            check_strength(s, "secret (the legacy secret beside secrets)", l)?;
        }
        return SecretSet::versioned(listed, legacy.map(str::to_owned))
            .ok_or_else(|| StartError::Config("secrets is empty".into()));
    }
    if !s.secret.is_empty() {
        check_strength(s, "secret", s.secret.expose_secret())?;
        return Ok(SecretSet::single(s.secret.expose_secret().to_owned()));
    }
    if s.environment == Environment::Production {
        return Err(StartError::Config(
            "no secret: set BETTER_AUTH_SECRET or SESSIOND_SECRET (at least 32 characters), \
             or BETTER_AUTH_SECRETS"
                .into(),
        ));
    }
    let path = s.data_dir.join("secret");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim().to_owned();
        if existing.len() >= MIN_SECRET_LEN {
            tracing::warn!(path = %path.display(), "no secret configured; using the generated development secret");
            return Ok(SecretSet::single(existing));
        }
    }
    private_dir(&s.data_dir)?;
    let secret = format!("{}{}", generate_id(), generate_id());
    write_private(&path, &secret)?;
    tracing::warn!(path = %path.display(), "no secret configured; generated a development secret");
    Ok(SecretSet::single(secret))
}

fn write_private(path: &std::path::Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(content.as_bytes())
}

/// A built, bound application.
pub struct Application {
    listener: TcpListener,
    router: Router,
    limits: Limits,
    grace: std::time::Duration,
    /// The operations listener and what it serves.
    ops: Option<(TcpListener, Router)>,
    /// The service API's own listener and router, when it has one.
    service: Option<(TcpListener, Router)>,
    /// Tells background loops (the webhook delivery) to stop at shutdown.
    background: tokio::sync::watch::Sender<bool>,
}

impl Application {
    /// Builds with the system clock.
    pub async fn build(settings: Settings) -> Result<Self, StartError> {
        Self::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    /// Builds with an injected clock (tests move it instead of sleeping).
    pub async fn build_with_clock(
        settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartError> {
        settings
            .validate()
            .map_err(|e| StartError::Config(e.to_string()))?;
        let secrets = resolve_secret(&settings)?;
        let extras = extra_columns(&settings);
        let connected = connect(
            &settings.database,
            &settings.data_dir,
            extras.clone(),
            settings.database.migrate_on_start,
        )
        .await?;
        let connected =
            with_read_replica(connected, &settings.database, extras, clock.clone()).await?;
        tracing::info!(backend = ?connected.backend, "store ready");
        let background = crate::store::webhooks::start(
            &settings.webhooks,
            connected.outbox.clone(),
            connected.pg_pool.clone(),
            clock.clone(),
        )
        .map_err(StartError::Config)?;
        if settings.environment == crate::config::Environment::Production {
            for risk in settings.risky_choices() {
                tracing::warn!("{risk}");
            }
        }
        if settings.is_stateless() && settings.email_password_enabled() {
            tracing::warn!(
                "stateless mode with email and password on: users live in this process only, \
                 so anyone can sign up again elsewhere with an email already in use"
            );
        }
        // Before the revocation feeds start: their first state must reach the recorder.
        let metrics_handle = settings
            .metrics
            .enabled
            .then(crate::metrics::install)
            .flatten();
        let cache = &settings.session.cookie_cache;
        let cache_on = settings.cookie_cache_enabled();
        let mut revocations = Revocations::new(
            // Stateless mode has no shared store to learn revocations from.
            cache_on && cache.immediate_revocation && !settings.is_stateless(),
            // Revocations are remembered as long as any cache value this service accepts.
            settings.cookie_cache_window_secs(),
            clock.clone(),
        );
        let feed = &settings.revocation_feed;
        let feed_access = if feed.enabled {
            // Kept as long as any JWT naming the session may live.
            let retention = RevokedLog::retention_for(&[
                settings.plugins.jwt.expiration_time,
                settings.forward_auth.jwt.expiration_time,
            ]);
            let log = Arc::new(RevokedLog::new(retention, clock.clone()));
            revocations = revocations.with_log(log.clone());
            Some(Arc::new(FeedAccess::new(
                log,
                feed.key.expose_secret(),
                feed.open,
                feed.max_streams,
            )))
        } else {
            None
        };
        let revocations = Arc::new(revocations);
        let feeds_on = revocations.listening();
        let listener: Arc<dyn crate::store::feed::Listener> = revocations.clone();
        let primary = connected.store;
        // Events: the audit trail's retention on every replica.
        let outbox = connected.outbox.filter(|_| settings.events_on());
        if let Some(o) = &outbox {
            crate::store::audit::spawn_purge(
                o.clone(),
                settings.session.audit.keep_days,
                clock.clone(),
            );
        }
        let jwt = jwt_routes(&settings, connected.keys, &secrets, clock.clone());
        let sessions_in_db =
            !settings.redis.enabled() || settings.session.store_session_in_database;
        if let (Some(pool), true, true) = (connected.pg_pool, sessions_in_db, feeds_on) {
            crate::store::feed::spawn_pg(pool, listener.clone());
        }
        let store: Arc<dyn Store> = if !settings.redis.enabled() {
            primary
        } else {
            let opts = RedisOptions {
                prefix: settings.redis.key_prefix.clone(),
                store_in_db: settings.session.store_session_in_database,
                preserve_in_db: settings.session.preserve_session_in_database,
                ended_mark_secs: settings.server.request_timeout.saturating_add(60),
            };
            let redis_store =
                RedisStore::connect(RedisTarget::new(&settings.redis)?, primary, opts).await?;
            if feeds_on {
                redis_store
                    .follow_revocations(settings.redis.keyspace_notifications, listener)
                    .await?;
            }
            tracing::info!("redis secondary storage ready");
            Arc::new(redis_store)
        };
        let ip = IpRules::new(&settings.advanced.ip_address).map_err(StartError::Config)?;
        let forward_auth = ForwardAuth::new(&settings.forward_auth).map_err(StartError::Config)?;
        let rate_limiter = if settings.rate_limit_enabled() {
            Some(Arc::new(rate_limiter(&settings, clock.clone()).await?))
        } else {
            None
        };
        let state = AppState::new(Shared {
            sessions: SessionService::new(&settings, store, clock, &secrets, revocations, outbox)
                .ok_or_else(|| StartError::Config("unusable secret".into()))?,
            cookie_writer: Arc::new(crate::http::set_cookie::CookieWriter::new(&settings)),
            origins: Arc::new(TrustedOrigins::new(&settings)),
            ip: Arc::new(ip),
            base_path: Arc::from(settings.base_path.as_str()),
            csrf_disabled: settings.advanced.disable_csrf_check
                || settings.advanced.disable_origin_check,
            origin_check_disabled: settings.advanced.disable_origin_check,
            bearer: settings
                .plugins
                .bearer
                .enabled
                .then_some(crate::http::bearer::Plugin {
                    require_signature: settings.plugins.bearer.require_signature,
                }),
            forward_auth: Arc::new(forward_auth),
            forward_auth_path: settings
                .forward_auth
                .enabled
                .then(|| Arc::from(settings.forward_auth.path.as_str())),
            rate_limiter,
            request_timeout: std::time::Duration::from_secs(settings.server.request_timeout.max(1)),
            body_limit: settings.server.body_limit,
            body_timeout: std::time::Duration::from_secs(settings.server.header_read_timeout),
            coerce_field_types: settings.advanced.coerce_field_types,
            metrics: metrics_handle,
            ops_on_main: settings.ops_on_main_listener(),
            jwt,
            jwks_path: Arc::from(settings.plugins.jwt.jwks.jwks_path.as_str()),
            revocation_feed: feed_access,
            service_api: crate::http::service_api::ServiceApi::new(&settings.service_api)
                .map(Arc::new),
            service_api_on_main: settings.service_api.listen.is_none(),
            events: settings.events_on(),
            openapi: Arc::from(
                openapi_document(&settings.base_path, &settings.forward_auth.path).as_str(),
            ),
        });
        let ops = match &settings.ops.listen {
            None => None,
            Some(addr) => {
                let l = TcpListener::bind(addr.as_str()).await?;
                Some((l, ops_router(state.clone())))
            }
        };
        let service = match (
            &settings.service_api.listen,
            crate::http::service_api::router(state.clone()),
        ) {
            (Some(addr), Some(r)) => Some((TcpListener::bind(addr.as_str()).await?, r)),
            _ => None,
        };
        let listener = TcpListener::bind((settings.host.as_str(), settings.port)).await?;
        let sv = &settings.server;
        // The process's own connections: the database's (pool and hot set share
        // database.max_connections), Redis, listeners, files.
        let own = u64::from(settings.database.max_connections) + 32;
        let limits = Limits {
            max_connections: sv.max_connections,
            header_read_timeout: std::time::Duration::from_secs(sv.header_read_timeout),
            idle_timeout: std::time::Duration::from_secs(sv.idle_timeout),
            max_header_bytes: sv.max_header_bytes,
        }
        .fit_descriptors(own);
        Ok(Self {
            listener,
            router: router(state),
            limits,
            grace: std::time::Duration::from_secs(settings.server.shutdown_grace),
            ops,
            service,
            background,
        })
    }

    /// The service API listener's address, when it has its own.
    pub fn service_addr(&self) -> Option<SocketAddr> {
        self.service.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// The bound address (port 0 in settings picks a free one).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The operations listener's address, when there is one.
    pub fn ops_addr(&self) -> Option<SocketAddr> {
        self.ops.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// Serves until SIGINT or SIGTERM, then drains in-flight requests for at most
    /// `server.shutdown_grace` seconds.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let (tx, rx) = tokio::sync::watch::channel(false);
        if let Some((listener, app)) = self.ops {
            let limits = Limits {
                max_connections: 64,
                ..self.limits
            };
            let stop = rx.clone();
            tokio::spawn(async move {
                if let Err(e) = server::serve(listener, app, limits, stop).await {
                    tracing::error!(error = %e, "operations listener failed");
                }
            });
        }
        if let Some((listener, app)) = self.service {
            let stop = rx.clone();
            let limits = self.limits;
            tokio::spawn(async move {
                if let Err(e) = server::serve(listener, app, limits, stop).await {
                    tracing::error!(error = %e, "service API listener failed");
                }
            });
        }
        let background = self.background;
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = background.send(true);
            let _ = tx.send(true);
        });
        let mut deadline = rx.clone();
        let grace = self.grace;
        tokio::select! {
            r = server::serve(self.listener, self.router, self.limits, rx) => r,
            () = async move {
                let _ = deadline.wait_for(|s| *s).await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!("shutdown grace period over; exiting with requests in flight");
                Ok(())
            }
        }
    }
}

/// The rate limiter: in memory, or counted in Redis for every replica.
async fn rate_limiter(s: &Settings, clock: Arc<dyn Clock>) -> Result<RateLimiter, StartError> {
    let limiter = RateLimiter::new(s, clock, &crate::http::api_paths(&s.base_path));
    if !s.rate_limit_shared() {
        return Ok(limiter);
    }
    if !s.redis.enabled() {
        return Err(StartError::Config(
            "rate_limit.storage = \"secondary-storage\" needs redis.url, redis.sentinel or redis.cluster".into(),
        ));
    }
    let target = RedisTarget::new(&s.redis)?;
    let counter = RedisRateCounter::connect(&target, s.redis.key_prefix.clone()).await?;
    Ok(limiter.with_shared(Arc::new(counter)))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

/// The tables' shape the configuration describes: additional user and session columns
/// (plugins' included) and the id type.
fn extra_columns(settings: &Settings) -> Shape {
    let columns = |fields: Vec<(String, AdditionalField)>| {
        fields
            .into_iter()
            .map(|(name, f)| ExtraColumn {
                name,
                kind: f.kind,
                required: f.required,
                default_value: f.default_value,
            })
            .collect()
    };
    Shape {
        user: columns(settings.user_fields()),
        session: columns(settings.session_fields()),
        generate_id: settings.advanced.database.generate_id,
        jwks: settings.plugins.jwt.enabled,
        events: settings.events_on(),
        events_refreshed: settings.session.audit.session_refreshed,
    }
}

/// The jwt plugin's keys and routes, when enabled.
fn jwt_routes(
    settings: &Settings,
    keys: Arc<dyn crate::store::keys::KeyStore>,
    secrets: &SecretSet,
    clock: Arc<dyn Clock>,
) -> Option<crate::http::tokens::JwtRoutes> {
    let j = &settings.plugins.jwt;
    if !j.enabled {
        return None;
    }
    let base = settings.effective_base_url();
    let or_base = |v: &str| {
        if v.is_empty() {
            base.clone()
        } else {
            v.to_owned()
        }
    };
    let secs_ms = |s: u64| {
        i64::try_from(s)
            .unwrap_or(i64::MAX / 1000)
            .saturating_mul(1000)
    };
    let opts = crate::session::tokens::JwtOptions {
        alg: j.jwks.alg.as_str(),
        crv: j.jwks.crv.clone(),
        modulus_bits: j.jwks.modulus_length,
        rotation_ms: (j.jwks.rotation_interval > 0).then(|| secs_ms(j.jwks.rotation_interval)),
        grace_ms: secs_ms(j.jwks.grace_period),
        encrypt: !j.jwks.disable_private_key_encryption,
        issuer: or_base(&j.issuer),
        audience: or_base(&j.audience),
        sid: settings.revocation_feed.enabled,
        ids: settings.advanced.database.generate_id,
    };
    let cache = format!("public, max-age={}", j.jwks.cache_max_age);
    Some(crate::http::tokens::JwtRoutes {
        issuer: Arc::new(crate::session::tokens::JwtIssuer::new(
            keys,
            secrets.clone(),
            clock,
            opts,
        )),
        ttl: j.expiration_time,
        header: !j.disable_setting_jwt_header,
        jwks_cache: axum::http::HeaderValue::from_str(&cache)
            .unwrap_or(axum::http::HeaderValue::from_static("no-store")),
    })
}

/// Applies migrations and exits (the `migrate` command).
pub async fn migrate_only(settings: &Settings) -> Result<(), StartError> {
    let extras = extra_columns(settings);
    connect(&settings.database, &settings.data_dir, extras, true).await?;
    Ok(())
}
