//! Cursor paging, the same on every list route: `limit` (rows a page) and `after` (the `next` of
//! the previous page, an opaque text); the answer's `next` is `null` on the last page. The store
//! walks an index from the cursor (keyset), never skips rows with OFFSET, so a walk through the
//! pages sees every row once even while new rows arrive.

use serde::Deserialize;
use utoipa::IntoParams;

use super::ApiError;
use crate::store::{Page, RunKey};

/// Rows a page when `limit` is not given, and the most a page may have, on the list routes.
pub(super) const DEFAULT_LIMIT: u32 = 100;
pub(super) const MAX_LIMIT: u32 = 1000;

/// The query of a list route with nothing to filter by: only the page. (Routes with filters
/// repeat `after` and `limit` beside them: serde cannot flatten into a struct that refuses
/// unknown keys.)
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct PageQuery {
    /// The cursor: the `next` of the previous page.
    pub(super) after: Option<String>,
    /// Rows a page (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub(super) limit: Option<String>,
}

/// A key a page can start after, as the opaque cursor writes it.
pub(super) trait Cursor: Sized {
    fn read(text: &str) -> Option<Self>;
    fn write(&self) -> String;
}

/// Lists walked by id: the cursor is the id of the previous page's last row.
impl Cursor for i64 {
    fn read(text: &str) -> Option<Self> {
        text.parse().ok()
    }

    fn write(&self) -> String {
        self.to_string()
    }
}

/// Sync runs, walked newest first: `started_at` (microseconds) and the run's id.
impl Cursor for RunKey {
    fn read(text: &str) -> Option<Self> {
        let (started_at, id) = text.split_once(':')?;
        Some(RunKey {
            started_at: started_at.parse().ok()?,
            id: id.to_string(),
        })
        .filter(|k| !k.id.is_empty())
    }

    fn write(&self) -> String {
        format!("{}:{}", self.started_at, self.id)
    }
}

/// The page a request asks for, read from its `after` and `limit` parameters.
#[derive(Debug)]
pub(super) struct Paging<K> {
    after: Option<K>,
    limit: u32,
}

impl<K: Cursor + Clone> Paging<K> {
    /// `limit` defaults to `default` and must lie in 1..=`max`; `after` must be a cursor this
    /// list wrote. Either wrong is refused (400) naming the parameter.
    pub(super) fn read_within(
        after: Option<&str>,
        limit: Option<&str>,
        default: u32,
        max: u32,
    ) -> Result<Self, ApiError> {
        let limit = match limit {
            None => default,
            Some(text) => text
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| {
                    ApiError::bad_page(
                        "limit",
                        format!("`{text}` is not a whole number from 1 to {max}"),
                    )
                })?,
        };
        let after = after
            .map(|text| {
                K::read(text).ok_or_else(|| {
                    ApiError::bad_page(
                        "after",
                        format!("`{text}` is not a cursor of this list; pass the `next` of the previous page"),
                    )
                })
            })
            .transpose()?;
        Ok(Paging { after, limit })
    }

    /// The list routes' paging: 100 rows a page by default, at most 1,000.
    pub(super) fn read(after: Option<&str>, limit: Option<&str>) -> Result<Self, ApiError> {
        Self::read_within(after, limit, DEFAULT_LIMIT, MAX_LIMIT)
    }

    pub(super) fn after(&self) -> Option<&K> {
        self.after.as_ref()
    }

    /// What to ask the store for: one row more than the page, to know whether another follows
    /// (so the last page says so itself instead of leaving an empty page to fetch).
    pub(super) fn query(&self) -> Page<K> {
        Page {
            after: self.after.clone(),
            limit: self.limit + 1,
        }
    }

    /// The page out of the rows `query` fetched, and the cursor of the next page, if any.
    pub(super) fn finish<T>(
        &self,
        mut rows: Vec<T>,
        key: impl Fn(&T) -> K,
    ) -> (Vec<T>, Option<String>) {
        let more = rows.len() > self.limit as usize;
        rows.truncate(self.limit as usize);
        let next = if more {
            rows.last().map(|row| key(row).write())
        } else {
            None
        };
        (rows, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_read_what_they_write() {
        let key = RunKey {
            started_at: 1_700_000_000_000_000,
            id: "run:with:colons".into(),
        };
        assert_eq!(RunKey::read(&key.write()), Some(key));
        assert_eq!(i64::read(&42.write()), Some(42));
        assert_eq!(RunKey::read("12"), None);
        assert_eq!(RunKey::read("x:run"), None);
        assert_eq!(RunKey::read("12:"), None);
        assert_eq!(i64::read("4x"), None);
    }

    #[test]
    fn limits_and_cursors_are_checked() {
        let paging = Paging::<i64>::read(None, None).unwrap();
        assert_eq!(paging.after(), None);
        assert_eq!(paging.query().limit, DEFAULT_LIMIT + 1);
        for bad in ["0", "1001", "-1", "ten", ""] {
            let err = Paging::<i64>::read(None, Some(bad)).unwrap_err();
            assert!(
                matches!(err, ApiError::BadPage { field: "limit", .. }),
                "{bad}: {err}"
            );
        }
        let err = Paging::<i64>::read(Some("abc"), None).unwrap_err();
        assert!(
            matches!(err, ApiError::BadPage { field: "after", .. }),
            "{err}"
        );
        assert_eq!(
            Paging::<i64>::read(Some("7"), Some("1000"))
                .unwrap()
                .after(),
            Some(&7)
        );
    }

    #[test]
    fn a_page_says_whether_another_follows() {
        let paging = Paging::<i64>::read(None, Some("2")).unwrap();
        assert_eq!(
            paging.finish(vec![1, 2, 3], |r| *r),
            (vec![1, 2], Some("2".to_string()))
        );
        assert_eq!(paging.finish(vec![1, 2], |r| *r), (vec![1, 2], None));
        assert_eq!(paging.finish(Vec::<i64>::new(), |r| *r), (vec![], None));
    }
}
