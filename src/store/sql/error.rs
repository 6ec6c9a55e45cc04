//! Which database failures mean "not now, try again" (503) and which are errors (500).

use crate::store::StoreError;

/// Database error codes that mean "this server cannot serve now, try again (elsewhere)".
/// PostgreSQL: connection exceptions (class 08), out of resources (53xxx), shutdown or
/// start-up (57P01–57P04), a read-only transaction on a standby or a database made
/// read-only (25006), a database not accepting connections (55000) or gone (3D000: the
/// store cannot serve, whatever the request). SQLite (primary
/// result codes): busy, locked, read-only, I/O error, full, cannot open (5, 6, 8, 10, 13, 14).
fn is_transient_code(code: &str) -> bool {
    // SQLite's codes are numbers below 10,000; PostgreSQL's are five characters.
    if code.len() < 5 {
        return code
            .parse::<u32>()
            .is_ok_and(|n| matches!(n & 0xff, 5 | 6 | 8 | 10 | 13 | 14));
    }
    code.starts_with("08")
        || code.starts_with("53")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "57P04" | "25006" | "55000" | "3D000"
        )
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
            sqlx::Error::Database(db) if db.code().is_some_and(|c| is_transient_code(&c)) => {
                StoreError::Unavailable(Box::new(e))
            }
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(Box::new(e)),
            _ => StoreError::Backend(Box::new(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_transient_code;

    #[test]
    fn transient_codes_are_told_apart_from_failures() {
        for code in [
            "08006", "08001", "53300", "57P01", "57P03", "57P04", "25006", "55000", "3D000",
        ] {
            assert!(is_transient_code(code), "{code}");
        }
        // SQLite: busy, busy (snapshot), locked, read-only, I/O error, full, cannot open.
        for code in ["5", "517", "6", "8", "1032", "10", "13", "14"] {
            assert!(is_transient_code(code), "{code}");
        }
        for code in [
            "23505", "23502", "40001", "42P01", "22001", "1555", "2067", "19", "1",
        ] {
            assert!(!is_transient_code(code), "{code}");
        }
    }
}
