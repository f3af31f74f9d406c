//! The storage conformance checks, one file per store trait.

mod batches;
mod isolation;
mod ledger;
mod login;
mod outbox;
mod records;
mod sample;
mod tenants;

pub use batches::*;
pub use isolation::*;
pub use ledger::*;
pub use login::*;
pub use outbox::*;
pub use records::*;
pub use tenants::*;

use crate::Fresh;
use sne_ports::Storage;
use std::future::Future;

/// Runs every check, each on its own fresh storage from `make`.
pub async fn run_all<S, F, Fut>(make: F)
where
    S: Storage + 'static,
    F: Fn() -> Fut,
    Fut: Future<Output = Fresh<S>>,
{
    tenants_are_created_once_and_found(make().await).await;
    tenant_update_is_version_checked(make().await).await;
    ne_tokens_swap_only_over_the_expected_token(make().await).await;
    product_pairs_add_or_replace(make().await).await;
    append_is_idempotent(make().await).await;
    the_oldest_pending_change_is_told(make().await).await;
    pending_changes_are_listed_oldest_first_and_claimed_ones_leave_the_list(make().await).await;
    concurrent_appends_count_each_change_once(make().await).await;
    a_large_push_is_appended_whole(make().await).await;
    claims_follow_append_order(make().await).await;
    concurrent_claimers_never_share_a_change(make().await).await;
    lease_blocks_others_until_it_expires(make().await).await;
    finish_build_is_conditional_and_writes_the_mirror(make().await).await;
    every_allowed_transition_works(make().await).await;
    refused_transitions_change_nothing(make().await).await;
    transitions_need_their_data(make().await).await;
    a_stale_step_is_refused(make().await).await;
    outcomes_are_reported_once_with_their_report(make().await).await;
    a_failed_file_is_re_sent_once(make().await).await;
    a_frozen_batch_is_stored_once(make().await).await;
    batch_listings_are_ordered(make().await).await;
    cursor_is_compare_and_set(make().await).await;
    order_record_is_compare_and_set(make().await).await;
    report_outbox_is_idempotent(make().await).await;
    report_claims_are_exclusive_and_expire(make().await).await;
    concurrent_report_claims_have_one_winner(make().await).await;
    login_attempts_are_counted_against_the_limit(make().await).await;
    concurrent_login_attempts_never_exceed_the_limit(make().await).await;
    tenants_are_isolated(make().await).await;
}

/// One `#[tokio::test]` per check (multi-threaded, so the race checks race).
/// `$fresh` is the path of an `async fn() -> Fresh<YourStore>`; the calling crate
/// needs `tokio` with the `macros` and `rt-multi-thread` features.
#[macro_export]
macro_rules! storage_tests {
    ($fresh:path) => {
        $crate::storage_tests!(@each $fresh;
            tenants_are_created_once_and_found,
            tenant_update_is_version_checked,
            ne_tokens_swap_only_over_the_expected_token,
            product_pairs_add_or_replace,
            append_is_idempotent,
            the_oldest_pending_change_is_told,
            pending_changes_are_listed_oldest_first_and_claimed_ones_leave_the_list,
            concurrent_appends_count_each_change_once,
            a_large_push_is_appended_whole,
            claims_follow_append_order,
            concurrent_claimers_never_share_a_change,
            lease_blocks_others_until_it_expires,
            finish_build_is_conditional_and_writes_the_mirror,
            every_allowed_transition_works,
            refused_transitions_change_nothing,
            transitions_need_their_data,
            a_stale_step_is_refused,
            outcomes_are_reported_once_with_their_report,
            a_failed_file_is_re_sent_once,
            a_frozen_batch_is_stored_once,
            batch_listings_are_ordered,
            cursor_is_compare_and_set,
            order_record_is_compare_and_set,
            report_outbox_is_idempotent,
            report_claims_are_exclusive_and_expire,
            concurrent_report_claims_have_one_winner,
            login_attempts_are_counted_against_the_limit,
            concurrent_login_attempts_never_exceed_the_limit,
            tenants_are_isolated,
        );
    };
    (@each $fresh:path; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                $crate::storage::$check($fresh().await).await;
            }
        )*
    };
}
