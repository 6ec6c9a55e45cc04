//! The store contract on a three-master Redis Cluster: one cluster, every contract test in
//! turn, each under a hash-tagged key prefix of its own.

use crate::store::{contract, fixture};
use crate::support::cluster::PrivateCluster;

macro_rules! in_turn {
    ($cluster:expr; $($name:ident),* $(,)?) => {
        $(
            let f = fixture::redis_cluster($cluster).await;
            contract::$name(&f).await;
        )*
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_contract_on_a_cluster() {
    let cluster = PrivateCluster::start().await;
    in_turn!(&cluster;
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
        credential_password_without_password_or_account,
    );
}
