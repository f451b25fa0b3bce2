//! Keyset pages of the lists the admin API serves (findings, actions, conflicts, dead letters,
//! silences, sync runs, tokens, policy changes): each page starts after the last row of the one
//! before, walking an index (the primary key, or `started_at` for runs) instead of skipping rows
//! with OFFSET, so a page costs the same deep in a long list and a row is never seen twice.
//! Stamped per backend by `impl_list_store!` the way `impl_store!` stamps the rest.

use async_trait::async_trait;

use super::StoreError;
use crate::alert::Silence;
use crate::domain::{
    ApiToken, Conflict, DeadLetter, DedupProposal, Endpoint, PolicyChange, ProposalStatus, SyncRun,
};
use crate::monitor::{Finding, FindingState, Severity};

pub(super) const PAGE_FINDINGS: &str = include_str!("sql/page_findings.sql");
pub(super) const PAGE_DEDUP_PROPOSALS: &str = include_str!("sql/page_dedup_proposals.sql");
pub(super) const PAGE_OPEN_CONFLICTS: &str = include_str!("sql/page_open_conflicts.sql");
pub(super) const PAGE_OPEN_DEAD_LETTERS: &str = include_str!("sql/page_open_dead_letters.sql");
pub(super) const PAGE_SILENCES: &str = include_str!("sql/page_silences.sql");
pub(super) const PAGE_RUNS: &str = include_str!("sql/page_runs.sql");
pub(super) const PAGE_TOKENS: &str = include_str!("sql/page_tokens.sql");
pub(super) const PAGE_POLICY_CHANGES: &str = include_str!("sql/page_policy_changes.sql");

/// One page of a list: the rows after `after` (the key of the previous page's last row) in the
/// list's order, at most `limit` of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<K> {
    pub after: Option<K>,
    pub limit: u32,
}

impl<K> Page<K> {
    /// The first `limit` rows.
    pub fn first(limit: u32) -> Self {
        Page { after: None, limit }
    }
}

/// Where a page of sync runs (newest first) starts: after this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunKey {
    /// The run's `started_at`, in microseconds.
    pub started_at: i64,
    pub id: String,
}

/// Filters of a page of findings; every filter given must match.
#[derive(Debug, Clone, Default)]
pub struct FindingFilter {
    pub state: Option<FindingState>,
    pub kind: Option<String>,
    pub severity: Option<Severity>,
}

#[async_trait]
pub trait ListStore {
    /// Findings, newest (highest id) first.
    async fn findings_page(
        &self,
        filter: &FindingFilter,
        page: &Page<i64>,
    ) -> Result<Vec<Finding>, StoreError>;

    /// Dedup proposals (the API's actions), oldest first.
    async fn dedup_proposals_page(
        &self,
        endpoint: Option<Endpoint>,
        status: Option<ProposalStatus>,
        page: &Page<i64>,
    ) -> Result<Vec<DedupProposal>, StoreError>;

    /// Open conflicts, oldest first.
    async fn open_conflicts_page(
        &self,
        endpoint: Option<Endpoint>,
        page: &Page<i64>,
    ) -> Result<Vec<Conflict>, StoreError>;

    /// Open dead letters, oldest first.
    async fn open_dead_letters_page(
        &self,
        endpoint: Option<Endpoint>,
        page: &Page<i64>,
    ) -> Result<Vec<DeadLetter>, StoreError>;

    /// Silences, oldest first.
    async fn silences_page(&self, page: &Page<i64>) -> Result<Vec<Silence>, StoreError>;

    /// Sync runs, newest first.
    async fn runs_page(
        &self,
        endpoint: Option<Endpoint>,
        page: &Page<RunKey>,
    ) -> Result<Vec<SyncRun>, StoreError>;

    /// API tokens (never their hashes), oldest first.
    async fn tokens_page(&self, page: &Page<i64>) -> Result<Vec<ApiToken>, StoreError>;

    /// Run-time policy changes, oldest first.
    async fn policy_changes_page(
        &self,
        endpoint: Option<Endpoint>,
        page: &Page<i64>,
    ) -> Result<Vec<PolicyChange>, StoreError>;
}

/// The bound of a page walked oldest first by id: rows above it (the first page: every row).
pub(super) fn ascending(after: Option<i64>) -> i64 {
    after.unwrap_or(i64::MIN)
}

/// The bound of a page walked newest first by id: rows below it (the first page: every row).
pub(super) fn before_descending(after: Option<i64>) -> i64 {
    after.unwrap_or(i64::MAX)
}

macro_rules! impl_list_store {
    ($store:ty, $row:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::ListStore for $store {
            async fn findings_page(
                &self,
                filter: &$crate::store::FindingFilter,
                page: &$crate::store::Page<i64>,
            ) -> Result<Vec<$crate::monitor::Finding>, StoreError> {
                use $crate::store::listing as q;
                sqlx::query(q::PAGE_FINDINGS)
                    .bind(q::before_descending(page.after))
                    .bind(filter.state.map(|s| s.as_str()))
                    .bind(filter.kind.as_deref())
                    .bind(filter.severity.map(|s| s.as_str()))
                    .bind(i64::from(page.limit))
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(Self::finding_from_row)
                    .collect()
            }

            async fn dedup_proposals_page(
                &self,
                endpoint: Option<$crate::domain::Endpoint>,
                status: Option<$crate::domain::ProposalStatus>,
                page: &$crate::store::Page<i64>,
            ) -> Result<Vec<$crate::domain::DedupProposal>, StoreError> {
                use $crate::store::listing as q;
                sqlx::query(q::PAGE_DEDUP_PROPOSALS)
                    .bind(q::ascending(page.after))
                    .bind(endpoint.map(|e| e.as_str()))
                    .bind(status.map(|s| s.as_str()))
                    .bind(i64::from(page.limit))
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(Self::proposal_from_row)
                    .collect()
            }

            async fn open_conflicts_page(
                &self,
                endpoint: Option<$crate::domain::Endpoint>,
                page: &$crate::store::Page<i64>,
            ) -> Result<Vec<$crate::domain::Conflict>, StoreError> {
                self.endpoint_page(
                    $crate::store::listing::PAGE_OPEN_CONFLICTS,
                    endpoint,
                    page,
                    Self::conflict_from_row,
                )
                .await
            }

            async fn open_dead_letters_page(
                &self,
                endpoint: Option<$crate::domain::Endpoint>,
                page: &$crate::store::Page<i64>,
            ) -> Result<Vec<$crate::domain::DeadLetter>, StoreError> {
                self.endpoint_page(
                    $crate::store::listing::PAGE_OPEN_DEAD_LETTERS,
                    endpoint,
                    page,
                    Self::dead_letter_from_row,
                )
                .await
            }

            async fn silences_page(
                &self,
                page: &$crate::store::Page<i64>,
            ) -> Result<Vec<$crate::alert::Silence>, StoreError> {
                use $crate::store::listing as q;
                sqlx::query(q::PAGE_SILENCES)
                    .bind(q::ascending(page.after))
                    .bind(i64::from(page.limit))
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(Self::silence_from_row)
                    .collect()
            }

            async fn runs_page(
                &self,
                endpoint: Option<$crate::domain::Endpoint>,
                page: &$crate::store::Page<$crate::store::RunKey>,
            ) -> Result<Vec<$crate::domain::SyncRun>, StoreError> {
                use $crate::store::listing as q;
                // Before every run on the first page: any id passes once started_at is below MAX.
                let (started_at, id) = page
                    .after
                    .as_ref()
                    .map_or((i64::MAX, ""), |k| (k.started_at, k.id.as_str()));
                sqlx::query(q::PAGE_RUNS)
                    .bind(started_at)
                    .bind(id)
                    .bind(endpoint.map(|e| e.as_str()))
                    .bind(i64::from(page.limit))
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(Self::run_from_row)
                    .collect()
            }

            async fn tokens_page(
                &self,
                page: &$crate::store::Page<i64>,
            ) -> Result<Vec<$crate::domain::ApiToken>, StoreError> {
                use $crate::store::listing as q;
                sqlx::query(q::PAGE_TOKENS)
                    .bind(q::ascending(page.after))
                    .bind(i64::from(page.limit))
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map($crate::store::common::token_from_row)
                    .collect()
            }

            async fn policy_changes_page(
                &self,
                endpoint: Option<$crate::domain::Endpoint>,
                page: &$crate::store::Page<i64>,
            ) -> Result<Vec<$crate::domain::PolicyChange>, StoreError> {
                self.endpoint_page(
                    $crate::store::listing::PAGE_POLICY_CHANGES,
                    endpoint,
                    page,
                    Self::policy_change_from_row,
                )
                .await
            }
        }

        impl $store {
            /// One page of rows walked oldest first by id, optionally of one endpoint.
            async fn endpoint_page<T>(
                &self,
                sql: &'static str,
                endpoint: Option<$crate::domain::Endpoint>,
                page: &$crate::store::Page<i64>,
                from_row: fn(&$row) -> Result<T, StoreError>,
            ) -> Result<Vec<T>, StoreError> {
                sqlx::query(sql)
                    .bind($crate::store::listing::ascending(page.after))
                    .bind(endpoint.map(|e| e.as_str()))
                    .bind(i64::from(page.limit))
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(from_row)
                    .collect()
            }
        }
    };
}

pub(super) use impl_list_store;
