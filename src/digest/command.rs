//! `syncwarden digest`: print one week's digest as text, HTML or JSON, and optionally email it.

use super::render::{Images, html, text};
use super::schedule::Digester;
use super::week::{IsoWeek, Zone};
use super::{DigestError, charts};
use crate::clock::Clock;
use crate::config::Settings;
use crate::domain::Timestamp;
use crate::startup;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Html,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct DigestArgs {
    /// An ISO week (2026-W47), `current` (the week so far) or `last` (the last complete week).
    #[arg(long, default_value = "last")]
    pub week: String,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Also email it to `digest.recipients`, through the SMTP server of an `[alerting]` email
    /// receiver.
    #[arg(long)]
    pub send: bool,
}

/// `current`, `last` or an ISO week, read in `zone` at `now`.
pub fn resolve_week(s: &str, zone: &Zone, now: Timestamp) -> Result<IsoWeek, DigestError> {
    match s {
        "current" => Ok(zone.week_of(now)),
        "last" => Ok(zone.week_of(now).previous()),
        other => IsoWeek::parse(other),
    }
}

pub async fn run(settings: &Settings, args: DigestArgs) -> anyhow::Result<()> {
    let digester = Digester::from_settings(settings, args.send)?;
    let now = Clock::system().now();
    let week = resolve_week(&args.week, digester.zone(), now)?;
    let store = startup::open_store(settings).await?;
    let digest = digester.digest(store.as_ref(), week, now).await;
    store.close().await;
    let digest = digest?;
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&digest)?),
        Format::Text => print!("{}", text(&digest)),
        Format::Html => println!("{}", html(&digest, &charts(&digest)?, Images::DataUri)),
    }
    if args.send {
        digester.send(&digest).await?;
        eprintln!(
            "digest {} sent to {}",
            digest.week,
            settings.digest.recipients.join(", ")
        );
    }
    Ok(())
}
