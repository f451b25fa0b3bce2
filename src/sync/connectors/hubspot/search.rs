//! Incremental reads through HubSpot's search, which answers at most 10,000 results per query:
//! the read moves its window forward on the last-modified time, and where more records than that
//! share one instant, it pages through that instant by object id. Nothing is skipped; records at
//! a window's edge may be read twice (the engine keeps one per key).

use serde_json::{Value, json};

use crate::domain::Timestamp;

/// HubSpot's search returns at most this many results for one query.
pub const SEARCH_LIMIT: u64 = 10_000;
const OBJECT_ID: &str = "hs_object_id";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    /// Records modified at or after (`strict`: after) `window` (ms), oldest first.
    From {
        window: i64,
        strict: bool,
        offset: u64,
    },
    /// Records modified exactly at `window` with an id above `after_id`, by id.
    Tie {
        window: i64,
        after_id: u64,
        offset: u64,
    },
}

impl Cursor {
    pub fn start(since: Timestamp) -> Self {
        Cursor::From {
            window: since.as_micros().div_euclid(1000),
            strict: false,
            offset: 0,
        }
    }

    /// A page token as `token` wrote it; none (or an unreadable one) starts at `since`.
    pub fn parse(token: Option<&str>, since: Timestamp) -> Self {
        let parts: Vec<&str> = token.unwrap_or_default().split(':').collect();
        let num = |i: usize| parts.get(i).and_then(|p| p.parse::<i64>().ok());
        let parsed = match parts.first().copied() {
            Some(kind @ ("ge" | "gt")) => num(1).zip(num(2)).map(|(window, offset)| Cursor::From {
                window,
                strict: kind == "gt",
                offset: offset as u64,
            }),
            Some("eq") => num(1)
                .zip(num(2))
                .zip(num(3))
                .map(|((window, after_id), offset)| Cursor::Tie {
                    window,
                    after_id: after_id as u64,
                    offset: offset as u64,
                }),
            _ => None,
        };
        parsed.unwrap_or_else(|| Self::start(since))
    }

    pub fn token(&self) -> String {
        match *self {
            Cursor::From {
                window,
                strict,
                offset,
            } => format!("{}:{window}:{offset}", if strict { "gt" } else { "ge" }),
            Cursor::Tie {
                window,
                after_id,
                offset,
            } => format!("eq:{window}:{after_id}:{offset}"),
        }
    }

    pub fn offset(&self) -> u64 {
        match *self {
            Cursor::From { offset, .. } | Cursor::Tie { offset, .. } => offset,
        }
    }

    /// The search body's `filterGroups` and `sorts`.
    pub fn query(&self, last_modified: &str) -> (Value, Value) {
        let filter = |property: &str, operator: &str, value: String| json!({"propertyName": property, "operator": operator, "value": value});
        match *self {
            Cursor::From { window, strict, .. } => (
                json!([{"filters": [filter(last_modified, if strict { "GT" } else { "GTE" }, window.to_string())]}]),
                json!([{"propertyName": last_modified, "direction": "ASCENDING"}]),
            ),
            Cursor::Tie {
                window, after_id, ..
            } => (
                json!([{"filters": [
                    filter(last_modified, "EQ", window.to_string()),
                    filter(OBJECT_ID, "GT", after_id.to_string()),
                ]}]),
                json!([{"propertyName": OBJECT_ID, "direction": "ASCENDING"}]),
            ),
        }
    }

    /// The cursor of the next page, or none when the read is done. `next_offset` is the answer's
    /// `paging.next.after`; `seen` the (last-modified ms, id) of the page's objects.
    pub fn next(&self, next_offset: Option<u64>, seen: &[(i64, u64)], page: u64) -> Option<Self> {
        match (*self, next_offset) {
            (Cursor::From { .. }, None) => None,
            (Cursor::Tie { window, .. }, None) => Some(Cursor::From {
                window,
                strict: true,
                offset: 0,
            }),
            (Cursor::From { window, strict, .. }, Some(offset)) => {
                if offset + page <= SEARCH_LIMIT {
                    return Some(Cursor::From {
                        window,
                        strict,
                        offset,
                    });
                }
                let newest = seen.iter().map(|(t, _)| *t).max().unwrap_or(window);
                Some(if newest > window {
                    Cursor::From {
                        window: newest,
                        strict: false,
                        offset: 0,
                    }
                } else {
                    // The whole window is one instant: go through it by id.
                    Cursor::Tie {
                        window,
                        after_id: 0,
                        offset: 0,
                    }
                })
            }
            (
                Cursor::Tie {
                    window, after_id, ..
                },
                Some(offset),
            ) => Some(if offset + page <= SEARCH_LIMIT {
                Cursor::Tie {
                    window,
                    after_id,
                    offset,
                }
            } else {
                Cursor::Tie {
                    window,
                    after_id: seen.iter().map(|(_, id)| *id).max().unwrap_or(after_id),
                    offset: 0,
                }
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_bad_ones_restart() {
        let since = Timestamp::from_micros(5_000_000);
        for cursor in [
            Cursor::From {
                window: 7,
                strict: true,
                offset: 200,
            },
            Cursor::Tie {
                window: 7,
                after_id: 99,
                offset: 400,
            },
        ] {
            assert_eq!(Cursor::parse(Some(&cursor.token()), since), cursor);
        }
        assert_eq!(Cursor::parse(Some("junk"), since), Cursor::start(since));
        assert_eq!(Cursor::parse(None, since).token(), "ge:5000:0");
    }

    #[test]
    fn a_full_window_of_one_instant_is_paged_by_id_then_left_behind() {
        let start = Cursor::start(Timestamp::from_micros(7_000));
        let same: Vec<(i64, u64)> = (1..=200).map(|id| (7, id)).collect();
        // Near the limit in a window of one instant: page through it by id.
        let tie = start.next(Some(9_900), &same, 200).unwrap();
        assert_eq!(
            tie,
            Cursor::Tie {
                window: 7,
                after_id: 0,
                offset: 0
            }
        );
        // Near the limit inside the instant: restart above the highest id seen.
        let deeper = Cursor::Tie {
            window: 7,
            after_id: 0,
            offset: 9_900,
        }
        .next(Some(10_000), &same, 200)
        .unwrap();
        assert_eq!(
            deeper,
            Cursor::Tie {
                window: 7,
                after_id: 200,
                offset: 0
            }
        );
        // The instant done, the read goes on strictly after it.
        assert_eq!(
            deeper.next(None, &[], 200),
            Some(Cursor::From {
                window: 7,
                strict: true,
                offset: 0
            })
        );
        // A window with newer records moves forward to the newest.
        let newer: Vec<(i64, u64)> = vec![(7, 1), (9, 2)];
        assert_eq!(
            start.next(Some(9_900), &newer, 200),
            Some(Cursor::From {
                window: 9,
                strict: false,
                offset: 0
            })
        );
        assert_eq!(start.next(None, &newer, 200), None);
    }
}
