//! The connections of `get-session`'s reads (see [`HotConns`]).

use std::sync::Arc;
use std::time::Duration;

use sqlx::{Database, Pool};

use crate::store::StoreError;

/// Connections for the one read every `get-session` makes, kept outside sqlx's pool:
/// sqlx pings each connection it takes back, a second round trip per request. Here a
/// connection that answered goes back to the idle list as it is. One dropped mid-statement
/// (its request was cancelled: the client went away, or the request timed out) or after an
/// error is first brought back to a clean state off the request path, and closed only if
/// that fails: clients that hang up must not make the database open a process each time.
/// With no connections of its own (see [`super::split_connections`]) it lends the pool's.
pub struct HotConns<DB: Database> {
    inner: Arc<HotInner<DB>>,
}

struct HotInner<DB: Database> {
    options: <DB::Connection as sqlx::Connection>::Options,
    idle: std::sync::Mutex<Vec<DB::Connection>>,
    size: usize,
    permits: Arc<tokio::sync::Semaphore>,
    acquire_timeout: Duration,
    /// Where connections come from when `size` is 0.
    pool: Option<Pool<DB>>,
}

impl<DB: Database> HotInner<DB> {
    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<DB::Connection>> {
        match self.idle.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }
}

impl<DB: Database> HotConns<DB> {
    pub(super) fn new(
        options: <DB::Connection as sqlx::Connection>::Options,
        size: u32,
        acquire_timeout: Duration,
        pool: &Pool<DB>,
    ) -> Self {
        let size = size as usize;
        Self {
            inner: Arc::new(HotInner {
                options,
                idle: std::sync::Mutex::new(Vec::with_capacity(size)),
                size,
                permits: Arc::new(tokio::sync::Semaphore::new(size)),
                acquire_timeout,
                pool: (size == 0).then(|| pool.clone()),
            }),
        }
    }

    /// Runs one statement on a hot connection, waiting for its answer at most
    /// `database.acquire_timeout`. A connection that stalls without closing (a partition:
    /// packets dropped, no reset) would otherwise hold get-session until the request
    /// timeout. No answer in time is the outer error, 503 at once: not worth a second
    /// connection, which would wait as long. The inner result is the statement's.
    pub(super) async fn bounded<T>(
        &self,
        statement: impl std::future::Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<Result<T, StoreError>, StoreError> {
        match tokio::time::timeout(self.inner.acquire_timeout, statement).await {
            Ok(res) => Ok(res.map_err(StoreError::from)),
            Err(_) => Err(StoreError::Unavailable(Box::new(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the database did not answer within database.acquire_timeout",
            )))),
        }
    }

    /// A connection, holding one of the permits that bound how many are out.
    pub(super) async fn take(&self) -> Result<HotConn<DB>, StoreError> {
        let inner = &self.inner;
        if let Some(pool) = &inner.pool {
            return Ok(HotConn {
                conn: None,
                lent: Some(pool.acquire().await?),
                permit: None,
                home: inner.clone(),
            });
        }
        let permit =
            tokio::time::timeout(inner.acquire_timeout, inner.permits.clone().acquire_owned())
                .await
                .map_err(|_| StoreError::Unavailable(Box::new(sqlx::Error::PoolTimedOut)))?
                .map_err(|_| StoreError::Unavailable(Box::new(sqlx::Error::PoolClosed)))?;
        let idle = inner.idle().pop();
        let conn = match idle {
            Some(c) => c,
            // Whatever stops a connection from opening (a server starting or shutting down,
            // a database refusing connections) means: not now, try again.
            None => tokio::time::timeout(
                inner.acquire_timeout,
                <DB::Connection as sqlx::Connection>::connect_with(&inner.options),
            )
            .await
            .map_err(|_| StoreError::Unavailable(Box::new(sqlx::Error::PoolTimedOut)))?
            .map_err(|e| StoreError::Unavailable(Box::new(e)))?,
        };
        Ok(HotConn {
            conn: Some(conn),
            lent: None,
            permit: Some(permit),
            home: inner.clone(),
        })
    }
}

/// A connection taken from [`HotConns`]. [`HotConn::release`] returns it after a statement
/// completed; dropping it instead (cancellation, `?` on an error) sends it to be checked.
/// A connection lent by the pool goes back to the pool either way, which checks it.
pub(super) struct HotConn<DB: Database> {
    conn: Option<DB::Connection>,
    lent: Option<sqlx::pool::PoolConnection<DB>>,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    home: Arc<HotInner<DB>>,
}

impl<DB: Database> HotConn<DB> {
    pub(super) fn get(&mut self) -> Result<&mut DB::Connection, StoreError> {
        if let Some(c) = self.lent.as_mut() {
            return Ok(&mut **c);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| StoreError::Unavailable(Box::new(sqlx::Error::PoolClosed)))
    }

    /// Back to the idle list as it is: the last statement completed.
    pub(super) fn release(mut self) {
        if let Some(c) = self.conn.take() {
            self.home.idle().push(c);
        }
    }
}

impl<DB: Database> Drop for HotConn<DB> {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        // The permit travels with the connection, so the number open stays bounded while
        // it is checked. `ping` first reads whatever answer of the cut-short statement is
        // still due (sqlx tracks it), then makes one round trip.
        let permit = self.permit.take();
        let home = self.home.clone();
        rt.spawn(async move {
            let ok = matches!(
                tokio::time::timeout(home.acquire_timeout, sqlx::Connection::ping(&mut conn)).await,
                Ok(Ok(()))
            );
            if ok {
                let mut idle = home.idle();
                if idle.len() < home.size {
                    idle.push(conn);
                }
            }
            drop(permit);
        });
    }
}
