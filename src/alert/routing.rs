//! The routing tree, compiled from settings with every inherited field filled in.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{Datelike, Timelike, Weekday};

use super::AlertError;
use super::matcher::Matcher;
use super::model::Labels;
use super::settings::{RouteSettings, TimeInterval};
use crate::domain::Timestamp;

/// A compiled `TimeInterval`.
#[derive(Debug, Clone)]
pub(super) struct MuteWindow {
    pub name: String,
    /// Empty: every day.
    weekdays: Vec<Weekday>,
    start_minute: u32,
    end_minute: u32,
}

impl MuteWindow {
    pub fn compile(interval: &TimeInterval) -> Result<Self, AlertError> {
        let invalid = |message: String| AlertError::InvalidTimeInterval {
            name: interval.name.clone(),
            message,
        };
        let minute = |s: &str| -> Result<u32, AlertError> {
            let (h, m) = s
                .split_once(':')
                .ok_or_else(|| invalid(format!("`{s}` is not HH:MM")))?;
            let (h, m): (u32, u32) = (
                h.parse()
                    .map_err(|_| invalid(format!("`{s}` is not HH:MM")))?,
                m.parse()
                    .map_err(|_| invalid(format!("`{s}` is not HH:MM")))?,
            );
            if m >= 60 || h * 60 + m > 24 * 60 {
                return Err(invalid(format!("`{s}` is not a time of day")));
            }
            Ok(h * 60 + m)
        };
        let weekdays = interval
            .weekdays
            .iter()
            .map(|d| {
                d.parse::<Weekday>()
                    .map_err(|_| invalid(format!("`{d}` is not a weekday")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (start_minute, end_minute) =
            (minute(&interval.start_time)?, minute(&interval.end_time)?);
        if start_minute >= end_minute {
            return Err(invalid("start_time must be before end_time".into()));
        }
        Ok(Self {
            name: interval.name.clone(),
            weekdays,
            start_minute,
            end_minute,
        })
    }

    pub fn is_active(&self, now: Timestamp) -> bool {
        let at = now.to_datetime();
        let minute = at.hour() * 60 + at.minute();
        (self.weekdays.is_empty() || self.weekdays.contains(&at.weekday()))
            && self.start_minute <= minute
            && minute < self.end_minute
    }
}

#[derive(Debug, Clone)]
pub(super) struct Route {
    /// Position in the tree (`0`, `0.1`, ...): part of the group key, so one alert routed twice
    /// forms two groups.
    pub id: String,
    pub receiver: String,
    pub matchers: Vec<Matcher>,
    pub group_by: Vec<String>,
    pub group_wait: Duration,
    pub group_interval: Duration,
    pub repeat_interval: Duration,
    pub continue_matching: bool,
    pub mute_windows: Vec<MuteWindow>,
    pub children: Vec<Route>,
}

impl Route {
    /// Compiles the root; `receivers` are the names configured, which every route must use.
    pub fn compile(
        root: &RouteSettings,
        receivers: &HashSet<&str>,
        windows: &HashMap<String, MuteWindow>,
    ) -> Result<Self, AlertError> {
        let defaults = super::settings::AlertingSettings::default().route;
        let base = Inherited {
            receiver: None,
            group_by: defaults.group_by.unwrap_or_default(),
            group_wait: defaults.group_wait_secs.unwrap_or_default(),
            group_interval: defaults.group_interval_secs.unwrap_or_default(),
            repeat_interval: defaults.repeat_interval_secs.unwrap_or_default(),
        };
        Self::compile_node(root, "0".into(), &base, receivers, windows)
    }

    fn compile_node(
        node: &RouteSettings,
        id: String,
        parent: &Inherited,
        receivers: &HashSet<&str>,
        windows: &HashMap<String, MuteWindow>,
    ) -> Result<Self, AlertError> {
        let inherited = Inherited {
            receiver: node.receiver.clone().or_else(|| parent.receiver.clone()),
            group_by: node
                .group_by
                .clone()
                .unwrap_or_else(|| parent.group_by.clone()),
            group_wait: node.group_wait_secs.unwrap_or(parent.group_wait),
            group_interval: node.group_interval_secs.unwrap_or(parent.group_interval),
            repeat_interval: node.repeat_interval_secs.unwrap_or(parent.repeat_interval),
        };
        let receiver = inherited
            .receiver
            .clone()
            .ok_or_else(|| AlertError::RouteWithoutReceiver { route: id.clone() })?;
        if !receivers.contains(receiver.as_str()) {
            return Err(AlertError::UnknownReceiver {
                route: id,
                receiver,
            });
        }
        let children = node
            .routes
            .iter()
            .enumerate()
            .map(|(i, child)| {
                Self::compile_node(child, format!("{id}.{i}"), &inherited, receivers, windows)
            })
            .collect::<Result<_, _>>()?;
        let mute_windows = node
            .mute_time_intervals
            .iter()
            .map(|name| {
                windows
                    .get(name)
                    .cloned()
                    .ok_or_else(|| AlertError::UnknownTimeInterval {
                        route: id.clone(),
                        name: name.clone(),
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Route {
            id,
            receiver,
            matchers: node.matchers.clone(),
            group_by: inherited.group_by,
            group_wait: Duration::from_secs(inherited.group_wait),
            group_interval: Duration::from_secs(inherited.group_interval),
            repeat_interval: Duration::from_secs(inherited.repeat_interval),
            continue_matching: node.continue_matching,
            mute_windows,
            children,
        })
    }

    /// The routes an alert goes to: the deepest matching ones, children tried in order, the first
    /// match ending the search unless it says `continue`. The root always takes what no child does.
    pub fn routes_for<'a>(&'a self, labels: &Labels) -> Vec<&'a Route> {
        let mut found = Vec::new();
        self.collect(labels, &mut found);
        if found.is_empty() {
            found.push(self);
        }
        found
    }

    fn collect<'a>(&'a self, labels: &Labels, found: &mut Vec<&'a Route>) -> bool {
        if !self.matchers.iter().all(|m| m.matches(labels)) {
            return false;
        }
        let mut child_matched = false;
        for child in &self.children {
            if child.collect(labels, found) {
                child_matched = true;
                if !child.continue_matching {
                    break;
                }
            }
        }
        if !child_matched {
            found.push(self);
        }
        true
    }

    /// The first of this route's mute windows open at `now`.
    pub fn active_mute_window(&self, now: Timestamp) -> Option<&MuteWindow> {
        self.mute_windows.iter().find(|w| w.is_active(now))
    }

    /// The group an alert joins on this route: the route plus the values of its `group_by` labels.
    pub fn group_labels(&self, labels: &Labels) -> Labels {
        self.group_by
            .iter()
            .filter_map(|name| labels.get(name).map(|v| (name.clone(), v.clone())))
            .collect()
    }
}

struct Inherited {
    receiver: Option<String>,
    group_by: Vec<String>,
    group_wait: u64,
    group_interval: u64,
    repeat_interval: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn tree() -> Route {
        let settings: RouteSettings = toml_route(
            r#"
            receiver = "admin"
            group_by = ["type"]
            [[routes]]
            matchers = ["severity=critical"]
            receiver = "pager"
            continue = true
            group_wait_secs = 0
            [[routes]]
            matchers = ["connector=~crm|erp"]
            receiver = "team"
            group_by = ["connector"]
            [[routes]]
            matchers = ["type=freshness"]
            receiver = "ops"
            "#,
        );
        let names = HashSet::from(["admin", "pager", "team", "ops"]);
        Route::compile(&settings, &names, &HashMap::new()).unwrap()
    }

    fn toml_route(s: &str) -> RouteSettings {
        use figment::providers::Format;
        figment::Figment::new()
            .merge(figment::providers::Toml::string(s))
            .extract()
            .unwrap()
    }

    fn receivers(route: &Route, l: &Labels) -> Vec<String> {
        route
            .routes_for(l)
            .iter()
            .map(|r| r.receiver.clone())
            .collect()
    }

    #[test]
    fn first_match_wins_unless_continue_and_the_root_takes_the_rest() {
        let root = tree();
        let crit = labels(&[("severity", "critical"), ("connector", "crm")]);
        assert_eq!(receivers(&root, &crit), ["pager", "team"]);
        let fresh = labels(&[("type", "freshness"), ("connector", "crm")]);
        assert_eq!(receivers(&root, &fresh), ["team"], "first match stops");
        assert_eq!(receivers(&root, &labels(&[("type", "x")])), ["admin"]);
    }

    #[test]
    fn children_inherit_timers_and_grouping() {
        let root = tree();
        let pager = &root.children[0];
        assert_eq!(pager.group_by, ["type"]);
        assert_eq!(pager.group_wait, Duration::ZERO);
        assert_eq!(pager.repeat_interval, Duration::from_secs(14_400));
        assert_eq!(root.children[1].group_wait, Duration::from_secs(30));
        assert_eq!(
            root.children[1].group_labels(&labels(&[("connector", "crm"), ("type", "t")])),
            labels(&[("connector", "crm")])
        );
    }

    #[test]
    fn unknown_or_missing_receivers_are_refused() {
        let names = HashSet::from(["admin"]);
        let missing = RouteSettings::default();
        assert!(matches!(
            Route::compile(&missing, &names, &HashMap::new()),
            Err(AlertError::RouteWithoutReceiver { .. })
        ));
        let unknown = toml_route("receiver = \"nobody\"");
        assert!(matches!(
            Route::compile(&unknown, &names, &HashMap::new()),
            Err(AlertError::UnknownReceiver { .. })
        ));
    }

    #[test]
    fn mute_windows_follow_weekday_and_time_of_day() {
        let window = MuteWindow::compile(&TimeInterval {
            name: "weekend nights".into(),
            weekdays: vec!["saturday".into(), "sunday".into()],
            start_time: "22:00".into(),
            end_time: "24:00".into(),
        })
        .unwrap();
        let at = |s: &str| Timestamp::parse_rfc3339(s).unwrap();
        assert!(
            window.is_active(at("2026-11-28T22:00:00Z")),
            "Saturday 22:00"
        );
        assert!(window.is_active(at("2026-11-29T23:59:00Z")), "Sunday 23:59");
        assert!(!window.is_active(at("2026-11-28T21:59:00Z")));
        assert!(!window.is_active(at("2026-11-27T23:00:00Z")), "a Friday");
        let bad = TimeInterval {
            name: "x".into(),
            weekdays: vec!["someday".into()],
            start_time: "00:00".into(),
            end_time: "24:00".into(),
        };
        assert!(MuteWindow::compile(&bad).is_err());
        let names = HashSet::from(["admin"]);
        let route = toml_route("receiver = \"admin\"\nmute_time_intervals = [\"nope\"]");
        assert!(matches!(
            Route::compile(&route, &names, &HashMap::new()),
            Err(AlertError::UnknownTimeInterval { .. })
        ));
    }
}
