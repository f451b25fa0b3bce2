//! ISO weeks and the time zone their boundaries are drawn in: a fixed offset (`+02:00`, `UTC`) or
//! an IANA zone (`Europe/Berlin`), whose days can be 23 or 25 hours long around a DST change.

use std::fmt;

use chrono::{
    DateTime, Datelike, Duration as ChronoDuration, FixedOffset, NaiveDate, NaiveDateTime,
    TimeZone, Weekday,
};

use super::DigestError;
use crate::domain::Timestamp;
use crate::store::WeekBounds;

/// An ISO 8601 week, `2026-W47`: Monday to Sunday.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IsoWeek {
    monday: NaiveDate,
}

impl IsoWeek {
    pub fn parse(s: &str) -> Result<Self, DigestError> {
        let bad = || DigestError::InvalidWeek(s.to_string());
        let (year, week) = s.split_once("-W").ok_or_else(bad)?;
        let year: i32 = year.parse().map_err(|_| bad())?;
        let week: u32 = week.parse().map_err(|_| bad())?;
        NaiveDate::from_isoywd_opt(year, week, Weekday::Mon)
            .map(|monday| Self { monday })
            .ok_or_else(bad)
    }

    /// The week `date` falls in.
    pub fn containing(date: NaiveDate) -> Self {
        let back = i64::from(date.weekday().num_days_from_monday());
        Self {
            monday: date - ChronoDuration::days(back),
        }
    }

    pub fn previous(self) -> Self {
        Self {
            monday: self.monday - ChronoDuration::days(7),
        }
    }

    /// Monday to Sunday.
    pub fn days(self) -> [NaiveDate; 7] {
        std::array::from_fn(|i| self.monday + ChronoDuration::days(i as i64))
    }
}

impl fmt::Display for IsoWeek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let iso = self.monday.iso_week();
        write!(f, "{}-W{:02}", iso.year(), iso.week())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Zone {
    Fixed(FixedOffset),
    Named(chrono_tz::Tz),
}

impl Zone {
    /// `UTC`, `Z`, `+02:00`, `-05:30` or an IANA name.
    pub fn parse(s: &str) -> Result<Self, DigestError> {
        let bad = || DigestError::InvalidTimeZone(s.to_string());
        if s.eq_ignore_ascii_case("utc") || s == "Z" {
            return Ok(Zone::Fixed(FixedOffset::east_opt(0).ok_or_else(bad)?));
        }
        if let Some(sign) = s.chars().next().filter(|c| *c == '+' || *c == '-') {
            let (hours, minutes) = s[1..].split_once(':').ok_or_else(bad)?;
            let hours: i32 = hours.parse().map_err(|_| bad())?;
            let minutes: i32 = minutes.parse().map_err(|_| bad())?;
            let seconds = (hours * 3600 + minutes * 60) * if sign == '-' { -1 } else { 1 };
            return FixedOffset::east_opt(seconds)
                .filter(|_| minutes < 60)
                .map(Zone::Fixed)
                .ok_or_else(bad);
        }
        s.parse::<chrono_tz::Tz>()
            .map(Zone::Named)
            .map_err(|_| bad())
    }

    /// The instant local time `at` happens; in a DST gap, the first instant after it.
    fn instant(&self, at: NaiveDateTime) -> Timestamp {
        fn first<Tz: TimeZone>(zone: &Tz, at: NaiveDateTime) -> Timestamp {
            (0..4)
                .find_map(|h| {
                    zone.from_local_datetime(&(at + ChronoDuration::hours(h)))
                        .earliest()
                })
                .map(|t| Timestamp::from_micros(t.timestamp_micros()))
                .unwrap_or_else(|| Timestamp::from_micros(at.and_utc().timestamp_micros()))
        }
        match self {
            Zone::Fixed(offset) => first(offset, at),
            Zone::Named(tz) => first(tz, at),
        }
    }

    /// When `date` starts in this zone.
    pub fn midnight(&self, date: NaiveDate) -> Timestamp {
        self.instant(date.and_time(chrono::NaiveTime::MIN))
    }

    /// The local date and time of `t` in this zone.
    pub fn local(&self, t: Timestamp) -> NaiveDateTime {
        let utc: DateTime<chrono::Utc> = t.to_datetime();
        match self {
            Zone::Fixed(offset) => utc.with_timezone(offset).naive_local(),
            Zone::Named(tz) => utc.with_timezone(tz).naive_local(),
        }
    }

    /// The week `t` falls in, in this zone.
    pub fn week_of(&self, t: Timestamp) -> IsoWeek {
        IsoWeek::containing(self.local(t).date())
    }

    /// The starts of the week's seven days and of the next week.
    pub fn bounds(&self, week: IsoWeek) -> WeekBounds {
        let monday = week.monday;
        std::array::from_fn(|i| self.midnight(monday + ChronoDuration::days(i as i64)))
    }

    /// The instant of `hour`:00 on `date`, local time.
    pub fn at_hour(&self, date: NaiveDate, hour: u32) -> Timestamp {
        let time = chrono::NaiveTime::from_hms_opt(hour.min(23), 0, 0).unwrap_or_default();
        self.instant(date.and_time(time))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_iso_weeks() {
        let w = IsoWeek::parse("2026-W47").unwrap();
        assert_eq!(w.to_string(), "2026-W47");
        assert_eq!(w.days()[0], NaiveDate::from_ymd_opt(2026, 11, 16).unwrap());
        assert_eq!(w.previous().to_string(), "2026-W46");
        // 2027-01-01 is a Friday of 2026's last week.
        let new_year = NaiveDate::from_ymd_opt(2027, 1, 1).unwrap();
        assert_eq!(IsoWeek::containing(new_year).to_string(), "2026-W53");
        for bad in ["2026-47", "2026-W54", "W47", "2026-Wxx", ""] {
            assert!(IsoWeek::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn week_bounds_follow_the_zone_and_its_dst_changes() {
        let week = IsoWeek::parse("2026-W13").unwrap();
        let berlin = Zone::parse("Europe/Berlin").unwrap();
        let b = berlin.bounds(week);
        // Monday 2026-03-23 00:00 CET is 23:00 UTC the day before; Sunday 29 March loses an hour.
        assert_eq!(b[0].to_string(), "2026-03-22T23:00:00Z");
        assert_eq!(b[6].to_string(), "2026-03-28T23:00:00Z");
        assert_eq!(b[7].to_string(), "2026-03-29T22:00:00Z");
        let fixed = Zone::parse("-05:30").unwrap();
        assert_eq!(fixed.bounds(week)[0].to_string(), "2026-03-23T05:30:00Z");
        assert_eq!(
            Zone::parse("UTC").unwrap().bounds(week)[0].to_string(),
            "2026-03-23T00:00:00Z"
        );
        for bad in ["Mars/Olympus", "+25:00", "+02:75", "+0200"] {
            assert!(Zone::parse(bad).is_err(), "{bad}");
        }
    }
}
