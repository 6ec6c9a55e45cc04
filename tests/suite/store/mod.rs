//! The store contract (`src/store/mod.rs`), tested once and run over every store: memory,
//! SQLite, PostgreSQL, and Redis around SQLite with sessions in Redis only (`redis`) or
//! also kept, and ended in place, in the database (`redis_db`). Each contract test is one
//! function in [`contract`]; [`conformance!`] expands it into one test per store, as
//! tower-sessions' `route_tests!` does. [`serial`] runs it again over the stores opened
//! with ids the database assigns (`*_serial`).
//!
//! PostgreSQL and Redis tests use a fresh database or key prefix each (the suite's
//! `support` fixtures), so they run in parallel. When the service is unreachable they
//! fail: `cargo test -- --skip postgres --skip redis` leaves them out knowingly.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Map, Value};
use sessiond::clock::{Clock, SystemClock};
use sessiond::config::{DatabaseSettings, FieldType, GenerateId};
use sessiond::crypto::token::generate_id;
use sessiond::model::{Session, User};
use sessiond::store::memory::MemoryStore;
use sessiond::store::redis::{RedisOptions, RedisStore};
use sessiond::store::sql::{connect, ExtraColumn, Shape};
use sessiond::store::{NewCredentialAccount, PrimaryStore, Store, UserChange};

mod cluster;
mod contract;
pub(crate) mod fixture;
mod records;
mod spans;
mod startup;

/// Raw SQL, for rows the store interface cannot write.
pub(crate) mod sql {
    use sqlx::Connection;

    pub async fn exec(url: &str, stmt: &str) {
        if url.starts_with("postgres") {
            let mut c = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query(stmt).execute(&mut c).await.unwrap();
        } else {
            let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
            sqlx::query(stmt).execute(&mut c).await.unwrap();
        }
    }
}

/// One test per contract function, on the store `$fixture` builds.
macro_rules! contract_tests {
    ($fixture:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let f = $fixture().await;
                crate::store::contract::$name(&f).await;
            }
        )*
    };
}

/// Every contract test of users and sessions on the store `$fixture` builds.
macro_rules! whole_contract {
    ($fixture:path) => {
        contract_tests!($fixture;
            create_user_writes_user_account_and_first_session,
            create_user_refuses_a_taken_email,
            unknown_users_read_as_none,
            set_password_replaces_the_credential_password,
            update_user_changes_name_and_image_everywhere,
            find_session_returns_the_session_and_its_user,
            touch_session_refreshes_only_when_due,
            update_session_fields_sets_and_clears_fields,
            delete_session_removes_only_that_session,
            delete_user_session_only_for_the_owner,
            delete_user_sessions_removes_every_session_of_the_user,
            delete_other_sessions_keeps_one,
            replace_user_sessions_swaps_old_for_new,
            list_sessions_is_the_newest_live_ones_oldest_first,
        );
    };
}

/// The whole contract over each named store (a function of [`fixture`]).
macro_rules! conformance {
    ($($store:ident),* $(,)?) => {
        $(
            mod $store {
                whole_contract!(crate::store::fixture::$store);

                /// Spans, checked in a process of their own (see `spans::ran_alone`).
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn spans_carry_ids_never_secrets() {
                    let name = concat!("store::", stringify!($store), "::spans_carry_ids_never_secrets");
                    if crate::store::spans::ran_alone(name) {
                        return;
                    }
                    let f = crate::store::fixture::$store().await;
                    crate::store::contract::spans_carry_ids_never_secrets(&f).await;
                }
            }
        )*
    };
}

conformance!(memory, sqlite, postgres, redis, redis_db);

// After the macros it uses.
mod serial;

/// The PrimaryStore contract, over the stores that can sit beneath Redis.
mod primary {
    macro_rules! primary_conformance {
        ($($store:ident),* $(,)?) => {
            $(
                mod $store {
                    contract_tests!(crate::store::fixture::$store;
                        user_by_id_reads_a_user,
                        end_sessions_ends_in_place,
                        end_and_replace_keeps_the_old_rows_ended,
                    );
                }
            )*
        };
    }
    primary_conformance!(memory, sqlite, postgres, sqlite_serial, postgres_serial);
}

/// What only stores over a database hold (Redis: around SQLite).
mod database {
    macro_rules! database_conformance {
        ($($store:ident),* $(,)?) => {
            $(
                mod $store {
                    contract_tests!(crate::store::fixture::$store;
                        replace_that_fails_changes_nothing,
                        credential_password_without_password_or_account,
                    );
                }
            )*
        };
    }
    database_conformance!(sqlite, postgres);

    mod sqlite_serial {
        contract_tests!(crate::store::fixture::sqlite_serial; credential_password_without_password_or_account);
    }

    mod postgres_serial {
        contract_tests!(crate::store::fixture::postgres_serial; credential_password_without_password_or_account);
    }

    mod redis {
        contract_tests!(crate::store::fixture::redis; credential_password_without_password_or_account);
    }

    mod redis_db {
        contract_tests!(crate::store::fixture::redis_db;
            replace_that_fails_changes_nothing,
            credential_password_without_password_or_account,
        );
    }
}
