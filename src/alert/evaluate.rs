//! From findings to notifications in the outbox: findings become alerts, alerts are muted by
//! silences and inhibition, routed to receivers, grouped, and a group is notified when its timers
//! and the notification log say so. The decision and the notification are stored together, before
//! anything is sent.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::AlertError;
use super::explain::{Explainer, explained};
use super::model::{Alert, AlertStatus, Labels, NewNotification, NotificationLogEntry, Silence};
use super::notifiers::{Notification, NotifiedAlert};
use super::routing::{MuteWindow, Route};
use super::settings::{AlertingSettings, InhibitRule};
use crate::dedup::llm::LlmSettings;
use crate::domain::Timestamp;
use crate::monitor::{Finding, FindingState};
use crate::store::Store;

/// Resolved alerts stay in view this long, so their resolution can still be notified after an
/// outage of the service; older ones are history.
const RESOLVED_IN_VIEW: Duration = Duration::from_secs(24 * 3600);

/// What one evaluation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EvaluationReport {
    /// Alerts opened, changed or resolved from findings.
    pub alert_events: usize,
    /// Notifications written to the outbox.
    pub enqueued: usize,
    /// Alerts muted by a silence or an inhibiting alert.
    pub muted: usize,
}

pub struct Alerting {
    store: Arc<dyn Store>,
    base_url: String,
    keep_firing_for: Duration,
    root: Route,
    inhibit_rules: Vec<InhibitRule>,
    send_resolved: HashMap<String, bool>,
    explainer: Explainer,
    explanation_prompt: PathBuf,
}

/// The alert a finding stands for: its fingerprint, and labels for routing (type, endpoint,
/// connector, severity) read from the evidence or else the fingerprint (`kind:endpoint:connector`).
/// A resolved finding keeps its alert firing until `keep_firing_for` has passed since the
/// resolution, so a finding that flaps (resolves and recurs within it) is not told as resolved
/// and fired again each time.
fn alert_from_finding(
    finding: &Finding,
    base_url: &str,
    now: Timestamp,
    keep_firing_for: Duration,
) -> Alert {
    let mut scope = finding.fingerprint.split(':').skip(1);
    let (scope_endpoint, scope_connector) = (scope.next(), scope.next());
    let from_evidence = |key: &str| finding.evidence.get(key).and_then(|v| v.as_str());
    let mut labels = Labels::new();
    labels.insert("type".into(), finding.kind.clone());
    labels.insert("severity".into(), finding.severity.as_str().into());
    let endpoint = from_evidence("endpoint").or(scope_endpoint);
    let connector = from_evidence("connector")
        .or(from_evidence("system"))
        .or(scope_connector);
    for (name, value) in [("endpoint", endpoint), ("connector", connector)] {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            labels.insert(name.into(), value.to_string());
        }
    }
    let mut annotations = Labels::new();
    annotations.insert("summary".into(), finding.title.clone());
    annotations.insert("evidence".into(), finding.evidence.to_string());
    annotations.insert(
        "finding_url".into(),
        format!(
            "{}/ui/#/findings/{}",
            base_url.trim_end_matches('/'),
            finding.id
        ),
    );
    let resolved = finding.state == FindingState::Resolved
        && finding
            .resolved_at
            .is_none_or(|at| now >= at + keep_firing_for);
    Alert {
        fingerprint: finding.fingerprint.clone(),
        finding_id: Some(finding.id),
        labels,
        annotations,
        status: if resolved {
            AlertStatus::Resolved
        } else {
            AlertStatus::Firing
        },
        starts_at: finding.detected_at,
        ends_at: if resolved { finding.resolved_at } else { None },
        updated_at: now,
        muted_by: None,
    }
}

/// One group of one receiver, as this evaluation sees it.
struct Group<'a> {
    route: &'a Route,
    labels: Labels,
    alerts: Vec<&'a Alert>,
}

impl Alerting {
    pub fn new(settings: &AlertingSettings, store: Arc<dyn Store>) -> Result<Self, AlertError> {
        let mut send_resolved = HashMap::new();
        for receiver in &settings.receivers {
            if send_resolved
                .insert(receiver.name().to_string(), receiver.send_resolved())
                .is_some()
            {
                return Err(AlertError::DuplicateReceiver(receiver.name().into()));
            }
        }
        let names: HashSet<&str> = send_resolved.keys().map(String::as_str).collect();
        let windows = settings
            .time_intervals
            .iter()
            .map(|t| Ok((t.name.clone(), MuteWindow::compile(t)?)))
            .collect::<Result<HashMap<_, _>, AlertError>>()?;
        let root = Route::compile(&settings.route, &names, &windows)?;
        Ok(Self {
            explainer: Explainer::template_only(store.clone()),
            store,
            base_url: settings.base_url.clone(),
            keep_firing_for: Duration::from_secs(settings.keep_firing_for_secs),
            root,
            inhibit_rules: settings.inhibit_rules.clone(),
            send_resolved,
            explanation_prompt: settings.explanation_prompt.clone(),
        })
    }

    /// Asks the LLM of `[llm]` (when one is configured) to explain each alert that fires.
    pub fn with_llm(mut self, llm: &LlmSettings) -> Result<Self, AlertError> {
        self.explainer = Explainer::new(llm, &self.explanation_prompt, self.store.clone())?;
        Ok(self)
    }

    /// Waits for the explanations asked of the LLM so far.
    pub async fn settle_explanations(&self) {
        self.explainer.settle().await;
    }

    /// Turns every finding that opened, changed severity, reopened or resolved since the last
    /// call into an alert event, stamped `now` (the evaluation's instant, not a later reading of
    /// the clock). Returns how many, and every alert as it now stands (so the
    /// evaluation does not read them again).
    async fn ingest_findings(&self, now: Timestamp) -> Result<(usize, Vec<Alert>), AlertError> {
        let mut known: HashMap<String, Alert> = self
            .store
            .alerts(Timestamp::from_micros(i64::MIN))
            .await?
            .into_iter()
            .map(|a| (a.fingerprint.clone(), a))
            .collect();
        let mut events = 0;
        for finding in self.store.findings(None).await? {
            let mut alert = alert_from_finding(&finding, &self.base_url, now, self.keep_firing_for);
            let changed = match known.get(&alert.fingerprint) {
                // A finding opened and resolved between two calls never fired: nothing to say.
                None => alert.status == AlertStatus::Firing,
                Some(old) => old.status != alert.status || old.labels != alert.labels,
            };
            if changed {
                self.store.upsert_alert(&alert).await?;
                self.explainer.request(&alert);
                // The upsert keeps the stored reason for a mute; so does the copy in hand.
                alert.muted_by = known
                    .get(&alert.fingerprint)
                    .and_then(|old| old.muted_by.clone());
                known.insert(alert.fingerprint.clone(), alert);
                events += 1;
            }
        }
        let mut alerts: Vec<Alert> = known.into_values().collect();
        alerts.sort_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
        Ok((events, alerts))
    }

    /// One evaluation at `now`: findings to alerts, mutes recorded, and every group that is due
    /// written to the outbox with its notification-log entry.
    pub async fn run_once(&self, now: Timestamp) -> Result<EvaluationReport, AlertError> {
        let (alert_events, all) = self.ingest_findings(now).await?;
        let mut report = EvaluationReport {
            alert_events,
            ..Default::default()
        };
        let in_view = now - RESOLVED_IN_VIEW;
        let mut alerts: Vec<Alert> = all
            .into_iter()
            .filter(|a| a.status == AlertStatus::Firing || a.ends_at.is_some_and(|e| e >= in_view))
            .collect();
        let silences: Vec<Silence> = self
            .store
            .silences()
            .await?
            .into_iter()
            .filter(|s| s.is_active(now))
            .collect();
        let mutes = self.mutes(&alerts, &silences, now);
        for alert in &mut alerts {
            let muted_by = mutes.get(&alert.fingerprint).cloned();
            if muted_by != alert.muted_by {
                self.store
                    .set_alert_muted(&alert.fingerprint, muted_by.as_deref())
                    .await?;
                if let Some(reason) = &muted_by {
                    tracing::info!(fingerprint = %alert.fingerprint, reason, "alert muted");
                }
                alert.muted_by = muted_by;
            }
        }
        report.muted = mutes.len();

        let mut groups: BTreeMap<(String, String), Group<'_>> = BTreeMap::new();
        for alert in &alerts {
            if alert.status == AlertStatus::Firing && alert.muted_by.is_some() {
                continue;
            }
            for route in self.root.routes_for(&alert.labels) {
                if route.active_mute_window(now).is_some() {
                    continue;
                }
                let labels = route.group_labels(&alert.labels);
                let key = format!(
                    "{}:{}",
                    route.id,
                    serde_json::to_string(&labels).unwrap_or_default()
                );
                groups
                    .entry((route.receiver.clone(), key))
                    .or_insert_with(|| Group {
                        route,
                        labels,
                        alerts: Vec::new(),
                    })
                    .alerts
                    .push(alert);
            }
        }

        let log: HashMap<(String, String), NotificationLogEntry> = self
            .store
            .notification_log()
            .await?
            .into_iter()
            .map(|e| ((e.receiver.clone(), e.group_key.clone()), e))
            .collect();
        for ((receiver, key), group) in &groups {
            let previous = log.get(&(receiver.clone(), key.clone()));
            if self
                .evaluate_group(receiver, key, group, previous, now)
                .await?
            {
                report.enqueued += 1;
            }
        }
        Ok(report)
    }

    /// Decides whether a group is due and, when it is, stores what is sent. Returns whether a
    /// notification was enqueued.
    async fn evaluate_group(
        &self,
        receiver: &str,
        key: &str,
        group: &Group<'_>,
        previous: Option<&NotificationLogEntry>,
        now: Timestamp,
    ) -> Result<bool, AlertError> {
        let send_resolved = self.send_resolved.get(receiver).copied().unwrap_or(false);
        let firing: Vec<&Alert> = group
            .alerts
            .iter()
            .copied()
            .filter(|a| a.status == AlertStatus::Firing)
            .collect();
        let notified_firing: HashSet<&str> = previous
            .map(|p| p.firing.iter().map(String::as_str).collect())
            .unwrap_or_default();
        // Resolutions not yet told: alerts resolved since the receiver heard them firing.
        let resolved: Vec<&Alert> = group
            .alerts
            .iter()
            .copied()
            .filter(|a| {
                a.status == AlertStatus::Resolved
                    && notified_firing.contains(a.fingerprint.as_str())
            })
            .collect();
        let hash = firing_hash(&firing);
        let due = match previous {
            Some(p) if !p.firing.is_empty() => {
                if !resolved.is_empty() {
                    // Resolutions go out at once instead of waiting for the group interval.
                    true
                } else if hash != p.hash {
                    now >= p.sent_at + group.route.group_interval
                } else {
                    !firing.is_empty() && now >= p.sent_at + group.route.repeat_interval
                }
            }
            // A new group (or one whose alerts had all resolved) waits for more alerts to join.
            _ => firing
                .iter()
                .map(|a| a.updated_at)
                .min()
                .is_some_and(|first| now >= first + group.route.group_wait),
        };
        if !due {
            return Ok(false);
        }
        let entry = NotificationLogEntry {
            receiver: receiver.to_string(),
            group_key: key.to_string(),
            hash,
            firing: firing.iter().map(|a| a.fingerprint.clone()).collect(),
            resolved: resolved.iter().map(|a| a.fingerprint.clone()).collect(),
            sent_at: now,
        };
        // A receiver that does not want resolutions hears nothing when resolutions are all there
        // is to say; the log still moves on, so a later recurrence counts as new.
        let only_resolutions = !resolved.is_empty()
            && firing
                .iter()
                .all(|a| notified_firing.contains(a.fingerprint.as_str()));
        let send = if firing.is_empty() {
            send_resolved && !resolved.is_empty()
        } else {
            send_resolved || !only_resolutions
        };
        let notification = send.then(|| {
            let mut alerts: Vec<&Alert> = firing.clone();
            if send_resolved {
                alerts.extend(resolved.iter().copied());
            }
            NewNotification {
                receiver: receiver.to_string(),
                group_key: key.to_string(),
                payload: serde_json::to_value(self.notification(receiver, key, group, &alerts))
                    .unwrap_or_default(),
            }
        });
        let id = self
            .store
            .record_notification(&entry, notification.as_ref(), now)
            .await?;
        if let Some(id) = id {
            tracing::info!(
                receiver,
                group = key,
                outbox_id = id,
                firing = firing.len(),
                resolved = resolved.len(),
                "notification enqueued"
            );
        }
        Ok(id.is_some())
    }

    fn notification(
        &self,
        receiver: &str,
        key: &str,
        group: &Group<'_>,
        alerts: &[&Alert],
    ) -> Notification {
        let status = if alerts.iter().any(|a| a.status == AlertStatus::Firing) {
            AlertStatus::Firing
        } else {
            AlertStatus::Resolved
        };
        Notification {
            receiver: receiver.to_string(),
            group_key: key.to_string(),
            status,
            group_labels: group.labels.clone(),
            common_labels: common(alerts.iter().map(|a| &a.labels)),
            common_annotations: common(alerts.iter().map(|a| &a.annotations)),
            external_url: self.base_url.clone(),
            alerts: alerts
                .iter()
                .map(|a| NotifiedAlert {
                    status: a.status,
                    labels: a.labels.clone(),
                    annotations: explained(a),
                    starts_at: a.starts_at,
                    ends_at: a.ends_at,
                    fingerprint: a.fingerprint.clone(),
                    generator_url: a
                        .annotations
                        .get("finding_url")
                        .cloned()
                        .unwrap_or_default(),
                })
                .collect(),
            delivery_key: None,
        }
    }

    /// Why each muted firing alert is muted: the first active silence matching it, else the first
    /// firing alert inhibiting it, else a mute window open on every route it goes to.
    fn mutes(
        &self,
        alerts: &[Alert],
        silences: &[Silence],
        now: Timestamp,
    ) -> HashMap<String, String> {
        let firing: Vec<&Alert> = alerts
            .iter()
            .filter(|a| a.status == AlertStatus::Firing)
            .collect();
        let mut mutes = HashMap::new();
        for alert in &firing {
            if let Some(silence) = silences.iter().find(|s| s.matches(&alert.labels)) {
                mutes.insert(
                    alert.fingerprint.clone(),
                    format!(
                        "silence {} by {}: {}",
                        silence.id, silence.author, silence.comment
                    ),
                );
                continue;
            }
            let inhibitor = self.inhibit_rules.iter().find_map(|rule| {
                if !rule
                    .target_matchers
                    .iter()
                    .all(|m| m.matches(&alert.labels))
                {
                    return None;
                }
                firing.iter().find(|source| {
                    source.fingerprint != alert.fingerprint
                        && rule
                            .source_matchers
                            .iter()
                            .all(|m| m.matches(&source.labels))
                        && rule.equal.iter().all(|name| {
                            // Both must carry the label: a missing label is not "equal".
                            matches!(
                                (source.labels.get(name), alert.labels.get(name)),
                                (Some(a), Some(b)) if a == b
                            )
                        })
                })
            });
            if let Some(source) = inhibitor {
                mutes.insert(
                    alert.fingerprint.clone(),
                    format!("inhibited by {}", source.fingerprint),
                );
                continue;
            }
            let windows: Option<Vec<String>> = self
                .root
                .routes_for(&alert.labels)
                .iter()
                .map(|route| {
                    route
                        .active_mute_window(now)
                        .map(|w| format!("mute window {} on route {}", w.name, route.id))
                })
                .collect();
            if let Some(windows) = windows {
                mutes.insert(alert.fingerprint.clone(), windows.join(", "));
            }
        }
        mutes
    }
}

/// Labels every one of `maps` has with the same value.
fn common<'a>(mut maps: impl Iterator<Item = &'a Labels>) -> Labels {
    let Some(first) = maps.next() else {
        return Labels::new();
    };
    let mut shared = first.clone();
    for map in maps {
        shared.retain(|k, v| map.get(k) == Some(v));
    }
    shared
}

/// Identifies the firing alerts of a group with their labels, so a new alert or a severity change
/// reads as a change.
fn firing_hash(firing: &[&Alert]) -> String {
    let mut lines: Vec<String> = firing
        .iter()
        .map(|a| {
            format!(
                "{}\u{1f}{}",
                a.fingerprint,
                serde_json::to_string(&a.labels).unwrap_or_default()
            )
        })
        .collect();
    lines.sort();
    let mut hasher = Sha256::new();
    for line in &lines {
        hasher.update(line.as_bytes());
        hasher.update(b"\n");
    }
    hex::encode(hasher.finalize())
}
