//! The jwt plugin's `jwks` table: signing keys shared with a Better Auth app using the
//! plugin. Rows are only ever added; which are used is the service's decision.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;

/// A `jwks` row. `private_key` is as stored (sealed, unless the app keeps keys in clear).
#[derive(Clone)]
pub struct JwkRow {
    /// Row id, the tokens' `kid` (empty before a `serial` store assigns it).
    pub id: String,
    /// The public JWK, JSON text.
    pub public_key: String,
    /// The private JWK: JSON text holding the sealed string, or the JWK itself.
    pub private_key: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it stops signing (rotation), if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// Its algorithm; `None` on rows older than the column (the configured one then).
    pub alg: Option<String>,
    /// Its curve.
    pub crv: Option<String>,
}

impl std::fmt::Debug for JwkRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwkRow")
            .field("id", &self.id)
            .field("alg", &self.alg)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Most rows read from `jwks`: keys are made once per rotation interval, so more means
/// something else writes the table; the newest are kept.
pub const MAX_KEYS: i64 = 1000;

/// The `jwks` table.
#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    /// Every row (at most [`MAX_KEYS`], the newest), oldest first.
    async fn jwks(&self) -> Result<Vec<JwkRow>, StoreError>;

    /// Adds `row` unless a key is live at `row.created_at` (no `expiresAt`, or a later
    /// one), checked and written as one step, so that replicas finding no key at once make
    /// one between them; whether it was added. A store that assigns ids writes the id into
    /// `row`.
    async fn create_jwk(&self, row: &mut JwkRow) -> Result<bool, StoreError>;
}
