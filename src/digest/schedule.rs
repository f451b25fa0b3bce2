//! Building and sending digests, and the weekly send of `serve`: at the configured day and hour
//! (in the digest's time zone) the last complete week's digest goes to the recipients. The store
//! records each week's send, claimed before it is made, so a restart or a second instance never
//! sends a week twice, and a send that failed (or whose sender died) is tried again.

use std::sync::Arc;
use std::time::Duration;

use super::kpis::{Digest, build};
use super::render::email_body;
use super::summary::Summarizer;
use super::week::{IsoWeek, Zone};
use super::{DigestError, DigestSettings, charts};
use crate::alert::ReceiverSettings;
use crate::alert::notifiers::EmailNotifier;
use crate::clock::Clock;
use crate::config::Settings;
use crate::domain::Timestamp;
use crate::store::Store;

/// A send missed (the service was down) is still made this long after its time; later, the
/// week is skipped rather than mailed days late.
const CATCH_UP: Duration = Duration::from_secs(24 * 3600);
/// How long a claim holds while the digest is built and sent.
const CLAIM: Duration = Duration::from_secs(600);
/// After a failed send, the week is tried again this much later.
const RETRY: Duration = Duration::from_secs(300);

/// Builds digests (summarised by the LLM when one is configured) and mails them.
pub struct Digester {
    zone: Zone,
    settings: DigestSettings,
    summarizer: Option<Summarizer>,
    mailer: Option<EmailNotifier>,
}

impl Digester {
    /// `mail`: set up the email too (it needs recipients and an email receiver).
    pub fn from_settings(settings: &Settings, mail: bool) -> Result<Self, DigestError> {
        let digest = &settings.digest;
        let mailer = if mail { Some(mailer(settings)?) } else { None };
        Ok(Self {
            zone: digest.zone()?,
            settings: digest.clone(),
            summarizer: Summarizer::from_settings(&settings.llm, &digest.summary_prompt)?,
            mailer,
        })
    }

    pub fn zone(&self) -> &Zone {
        &self.zone
    }

    /// The digest of `week` with its summary.
    pub async fn digest(
        &self,
        store: &dyn Store,
        week: IsoWeek,
        now: Timestamp,
    ) -> Result<Digest, DigestError> {
        let mut digest = build(
            store,
            &self.zone,
            &self.settings.time_zone,
            week,
            now,
            self.settings.top_findings,
        )
        .await?;
        if let Some(summarizer) = &self.summarizer {
            summarizer.summarize(&mut digest).await;
        }
        Ok(digest)
    }

    pub async fn send(&self, digest: &Digest) -> Result<(), DigestError> {
        let mailer = self.mailer.as_ref().ok_or(DigestError::NoRecipients)?;
        let (subject, body) = email_body(digest, &charts(digest)?);
        mailer
            .send(subject, body)
            .await
            .map_err(|e| DigestError::Send(e.to_string()))
    }
}

/// The email receiver the digest borrows its SMTP server and sender from, writing to the
/// digest's recipients.
fn mailer(settings: &Settings) -> Result<EmailNotifier, DigestError> {
    let digest = &settings.digest;
    if digest.recipients.is_empty() {
        return Err(DigestError::NoRecipients);
    }
    let email = settings
        .alerting
        .receivers
        .iter()
        .find_map(|r| match r {
            ReceiverSettings::Email(e)
                if digest.email_receiver.is_empty() || e.name == digest.email_receiver =>
            {
                Some(e)
            }
            _ => None,
        })
        .ok_or_else(|| {
            DigestError::NoEmailReceiver(if digest.email_receiver.is_empty() {
                "the digest is mailed through an email receiver of [alerting] and none is configured".into()
            } else {
                format!(
                    "digest.email_receiver `{}` is not an email receiver of [alerting]",
                    digest.email_receiver
                )
            })
        })?;
    let timeout = Duration::from_secs(settings.alerting.delivery.timeout_secs);
    Ok(EmailNotifier::with_recipients(
        email,
        &digest.recipients,
        timeout,
    )?)
}

pub struct DigestScheduler {
    store: Arc<dyn Store>,
    clock: Clock,
    digester: Digester,
    day: chrono::Weekday,
    hour: u32,
    /// This instance, in the store's record of sends.
    holder: String,
}

impl DigestScheduler {
    /// `None` when no recipients are configured (no scheduled send).
    pub fn from_settings(
        settings: &Settings,
        store: Arc<dyn Store>,
        clock: Clock,
    ) -> Result<Option<Self>, DigestError> {
        let digest = &settings.digest;
        if digest.recipients.is_empty() {
            return Ok(None);
        }
        if digest.send_hour > 23 {
            return Err(DigestError::InvalidHour(digest.send_hour));
        }
        Ok(Some(Self {
            store,
            clock,
            digester: Digester::from_settings(settings, true)?,
            day: digest.weekday()?,
            hour: digest.send_hour,
            holder: format!("digest-{}", uuid::Uuid::new_v4()),
        }))
    }

    /// The latest send time at or before `now`, and the week it sends: the last complete week
    /// before it.
    fn due(&self, now: Timestamp) -> (Timestamp, IsoWeek) {
        let zone = self.digester.zone();
        let this_week = zone.week_of(now);
        let day = this_week.days()[self.day.num_days_from_monday() as usize];
        let slot = zone.at_hour(day, self.hour);
        if slot <= now {
            (slot, this_week.previous())
        } else {
            let earlier = zone.at_hour(day - chrono::Duration::days(7), self.hour);
            (earlier, this_week.previous().previous())
        }
    }

    /// Sends the week due at `now` unless it was sent (or is being sent) already; returns the
    /// week it sent.
    pub async fn run_once(&self, now: Timestamp) -> Result<Option<IsoWeek>, DigestError> {
        let (slot, week) = self.due(now);
        if now >= slot + CATCH_UP {
            return Ok(None);
        }
        let name = week.to_string();
        if !self
            .store
            .claim_digest_send(&name, &self.holder, now + CLAIM, now)
            .await?
        {
            return Ok(None);
        }
        let sent = match self.digester.digest(self.store.as_ref(), week, now).await {
            Ok(digest) => self.digester.send(&digest).await,
            Err(e) => Err(e),
        };
        match sent {
            Ok(()) => {
                let at = self.clock.now();
                self.store
                    .finish_digest_send(&name, &self.holder, at)
                    .await?;
                tracing::info!(week = %name, "weekly digest sent");
                Ok(Some(week))
            }
            Err(e) => {
                self.store
                    .fail_digest_send(&name, &self.holder, now + RETRY, &e.to_string())
                    .await?;
                Err(e)
            }
        }
    }

    /// Checks every `every` until `stop` turns true; a failure is logged and tried again.
    pub async fn run(self, every: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            if let Err(e) = self.run_once(self.clock.now()).await {
                tracing::error!(error = %e, "weekly digest not sent");
            }
            tokio::select! {
                () = self.clock.sleep(every) => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
        }
    }
}
