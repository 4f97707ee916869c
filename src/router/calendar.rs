//! Business hours: when a team is open, in the team's own time zone, with its holidays.
//!
//! SLA timers count only open time ("timers pause outside hours"), and a customer who
//! escalates while a team is closed is told when it is back. Everything here is a pure
//! function of the configuration and a unix timestamp in milliseconds, so the router can
//! call it per queued conversation and tests can use fixed dates.
//!
//! What "open" means: an instant is open when its local wall-clock time in the team's zone
//! falls inside one of that weekday's ranges and its local date is not a holiday. All the
//! other queries (next opening, next closing, deadlines, elapsed open time) are derived
//! from that one definition, in real elapsed time. So on a spring-forward day a range the
//! clock skips (02:00-03:00 in Europe/Berlin) is never open, and on a fall-back day the
//! repeated hour inside a range is open twice (00:00-08:00 then lasts nine real hours).
//!
//! Every search is bounded: a gap between open periods is looked for at most
//! [`SEARCH_DAYS`] days ahead, and deadlines and elapsed time at most [`MAX_SPAN_DAYS`]
//! days, so no configuration can make the router loop for long.

use std::ops::ControlFlow;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Deserialize;

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;
/// How far ahead the next opening or closing is looked for before giving up.
pub const SEARCH_DAYS: i64 = 400;
/// The longest stretch that deadlines and elapsed open time are computed over.
pub const MAX_SPAN_DAYS: i64 = 3_660;
/// Instants past this (about the year 9000) are treated as never open: far beyond any
/// timer, and safely inside the range the time-zone library accepts.
const LAST_MS: i64 = 221_845_392_000_000;
const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// A team's business hours as written in `config.toml` (`[router.teams.business_hours]`).
/// Kept as text so configuration errors can quote what was written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusinessHoursConfig {
    /// IANA time-zone name the hours and holidays are in, e.g. `Europe/Berlin`.
    pub time_zone: String,
    /// Monday's open ranges, each `HH:MM-HH:MM` (end may be `24:00`); empty = closed.
    #[serde(default)]
    pub monday: Vec<String>,
    /// Tuesday's open ranges.
    #[serde(default)]
    pub tuesday: Vec<String>,
    /// Wednesday's open ranges.
    #[serde(default)]
    pub wednesday: Vec<String>,
    /// Thursday's open ranges.
    #[serde(default)]
    pub thursday: Vec<String>,
    /// Friday's open ranges.
    #[serde(default)]
    pub friday: Vec<String>,
    /// Saturday's open ranges.
    #[serde(default)]
    pub saturday: Vec<String>,
    /// Sunday's open ranges.
    #[serde(default)]
    pub sunday: Vec<String>,
    /// Local dates (`YYYY-MM-DD`) on which the team is closed all day.
    #[serde(default)]
    pub holidays: Vec<String>,
}

impl BusinessHoursConfig {
    fn days(&self) -> [(&'static str, &[String]); 7] {
        [
            ("monday", &self.monday),
            ("tuesday", &self.tuesday),
            ("wednesday", &self.wednesday),
            ("thursday", &self.thursday),
            ("friday", &self.friday),
            ("saturday", &self.saturday),
            ("sunday", &self.sunday),
        ]
    }
}

/// Why a business-hours configuration was refused; each quotes the offending text so the
/// config error says exactly what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    /// The time zone is not in the IANA database.
    #[error("unknown time zone {0:?} (use an IANA name such as \"Europe/Berlin\")")]
    UnknownTimeZone(String),
    /// A range is not written as `HH:MM-HH:MM` with valid times.
    #[error("{day}: {text:?} is not a time range; write \"HH:MM-HH:MM\", e.g. \"09:00-17:00\"")]
    BadRange { day: &'static str, text: String },
    /// A range ends at or before its start (including ranges across midnight).
    #[error(
        "{day}: {text:?} ends before it starts; a range cannot cross midnight, so write a night \
         shift as two ranges on two days (e.g. \"22:00-24:00\" and \"00:00-06:00\")"
    )]
    BackwardRange { day: &'static str, text: String },
    /// Two ranges of the same day overlap.
    #[error("{day}: {first:?} and {second:?} overlap")]
    Overlap {
        day: &'static str,
        first: String,
        second: String,
    },
    /// A holiday is not a valid `YYYY-MM-DD` date.
    #[error("holiday {0:?} is not a date; write \"YYYY-MM-DD\", e.g. \"2026-12-25\"")]
    BadDate(String),
}

/// A team's opening hours, ready to query: built once from the config, then cheap to clone
/// (the time zone is shared) and to ask, with no allocation per query except
/// [`BusinessCalendar::describe_next_open`].
#[derive(Debug, Clone)]
pub struct BusinessCalendar {
    /// True for teams without business hours: every instant is open.
    always: bool,
    tz: TimeZone,
    zone_name: String,
    /// Per weekday (Monday first), sorted, non-overlapping, non-touching local
    /// `[start, end)` in milliseconds since local midnight.
    week: [Vec<(i64, i64)>; 7],
    /// Holidays as days since 1970-01-01 (local calendar), sorted, deduplicated.
    holidays: Vec<i64>,
    /// No weekday has any open range.
    never_open: bool,
}

impl BusinessCalendar {
    /// The calendar of a team without business hours: open at every instant, so SLA time
    /// is plain wall time.
    pub fn always_open() -> Self {
        BusinessCalendar {
            always: true,
            tz: TimeZone::UTC,
            zone_name: "UTC".into(),
            week: Default::default(),
            holidays: Vec::new(),
            never_open: false,
        }
    }

    /// Checks and compiles a team's configured hours; the error names the first problem.
    pub fn from_config(c: &BusinessHoursConfig) -> Result<Self, CalendarError> {
        let zone_name = c.time_zone.trim();
        let tz = TimeZone::get(zone_name)
            .map_err(|_| CalendarError::UnknownTimeZone(c.time_zone.clone()))?;
        let mut week: [Vec<(i64, i64)>; 7] = Default::default();
        for (slot, (day, ranges)) in week.iter_mut().zip(c.days()) {
            let mut parsed = Vec::with_capacity(ranges.len());
            for text in ranges {
                let (start, end) = parse_range(text).ok_or_else(|| CalendarError::BadRange {
                    day,
                    text: text.clone(),
                })?;
                if end <= start {
                    return Err(CalendarError::BackwardRange {
                        day,
                        text: text.clone(),
                    });
                }
                parsed.push((start, end, text));
            }
            parsed.sort_by_key(|&(start, end, _)| (start, end));
            for pair in parsed.windows(2) {
                if pair[1].0 < pair[0].1 {
                    return Err(CalendarError::Overlap {
                        day,
                        first: pair[0].2.clone(),
                        second: pair[1].2.clone(),
                    });
                }
            }
            // Touching ranges ("09:00-12:00", "12:00-17:00") are one open period.
            for (start, end, _) in parsed {
                match slot.last_mut() {
                    Some(last) if last.1 == start => last.1 = end,
                    _ => slot.push((start, end)),
                }
            }
        }
        let mut holidays = Vec::with_capacity(c.holidays.len());
        for text in &c.holidays {
            let day = parse_date(text).ok_or_else(|| CalendarError::BadDate(text.clone()))?;
            holidays.push(day);
        }
        holidays.sort_unstable();
        holidays.dedup();
        let never_open = week.iter().all(Vec::is_empty);
        Ok(BusinessCalendar {
            always: false,
            tz,
            zone_name: zone_name.to_string(),
            week,
            holidays,
            never_open,
        })
    }

    /// The IANA name of the calendar's zone ("UTC" for an always-open calendar).
    pub fn time_zone(&self) -> &str {
        &self.zone_name
    }

    /// Whether the team is open at `at_ms` (unix epoch milliseconds): decides between
    /// routing now and the team's `when_closed` fallback.
    pub fn is_open(&self, at_ms: u64) -> bool {
        if self.always {
            return true;
        }
        let Some(at) = to_i64(at_ms) else {
            return false;
        };
        if self.never_open {
            return false;
        }
        let Some((offset, _)) = self.segment(at) else {
            return false;
        };
        let local = at + offset;
        let day = local.div_euclid(DAY_MS);
        let time = local.rem_euclid(DAY_MS);
        !self.is_holiday(day)
            && self.week[weekday(day)]
                .iter()
                .any(|&(start, end)| start <= time && time < end)
    }

    /// The first open instant at or after `at_ms` (`at_ms` itself when open); None when
    /// the team does not open within [`SEARCH_DAYS`] days (or has no hours at all).
    pub fn next_open(&self, at_ms: u64) -> Option<u64> {
        if self.always {
            return Some(at_ms);
        }
        let at = to_i64(at_ms)?;
        let until = at.saturating_add(SEARCH_DAYS * DAY_MS);
        self.walk(at, until, |start, _| ControlFlow::Break(start))
            .map(|t| t as u64)
    }

    /// When the open period that `at_ms` is in ends: the first closed instant after it.
    /// None when closed at `at_ms`, or when open without a break for [`SEARCH_DAYS`] days
    /// (always-open calendars included).
    pub fn next_close(&self, at_ms: u64) -> Option<u64> {
        if self.always || !self.is_open(at_ms) {
            return None;
        }
        let at = to_i64(at_ms)?;
        let until = at.saturating_add(SEARCH_DAYS * DAY_MS);
        let mut end = at;
        self.walk(at, until, |start, stop| {
            if start == end {
                end = stop;
                ControlFlow::Continue(())
            } else {
                ControlFlow::Break(end)
            }
        })
        .map(|t| t as u64)
    }

    /// The instant at which `business_ms` of open time has passed since `start_ms`: the
    /// SLA deadline of a timer started then. `business_ms == 0` gives `start_ms` even when
    /// closed. None when that much open time does not come within [`MAX_SPAN_DAYS`] days
    /// (or the calendar has no hours at all).
    pub fn add_business_time(&self, start_ms: u64, business_ms: u64) -> Option<u64> {
        if business_ms == 0 {
            return Some(start_ms);
        }
        if self.always {
            return start_ms.checked_add(business_ms);
        }
        let start = to_i64(start_ms)?;
        let want = i64::try_from(business_ms).ok()?;
        let until = start.saturating_add(MAX_SPAN_DAYS * DAY_MS);
        let mut left = want;
        self.walk(start, until, |open, close| {
            let len = close - open;
            if left <= len {
                ControlFlow::Break(open + left)
            } else {
                left -= len;
                ControlFlow::Continue(())
            }
        })
        .map(|t| t as u64)
    }

    /// Open milliseconds in `[from_ms, to_ms)`: how much SLA time has really elapsed. Zero
    /// when `to_ms <= from_ms`; only the first [`MAX_SPAN_DAYS`] days after `from_ms` count.
    pub fn business_time_between(&self, from_ms: u64, to_ms: u64) -> u64 {
        if to_ms <= from_ms {
            return 0;
        }
        if self.always {
            return to_ms - from_ms;
        }
        let Some(from) = to_i64(from_ms) else {
            return 0;
        };
        let to = to_i64(to_ms)
            .unwrap_or(LAST_MS)
            .min(from.saturating_add(MAX_SPAN_DAYS * DAY_MS));
        let mut total: i64 = 0;
        let _: Option<()> = self.walk(from, to, |open, close| {
            total += close - open;
            ControlFlow::Continue(())
        });
        total as u64
    }

    /// The next opening in words for a customer, in the team's zone, e.g.
    /// `"Monday 09:00 (Europe/Berlin)"`; an opening six days or more away carries its date
    /// (`"Monday 2027-01-04 09:00 (Europe/Berlin)"`). None when it never opens.
    pub fn describe_next_open(&self, at_ms: u64) -> Option<String> {
        let next = self.next_open(at_ms)?;
        let at = to_i64(next)?;
        let (offset, _) = self.segment(at)?;
        let local = at + offset;
        let day = local.div_euclid(DAY_MS);
        let minutes = local.rem_euclid(DAY_MS) / MINUTE_MS;
        let name = WEEKDAYS[weekday(day)];
        let (hour, minute) = (minutes / 60, minutes % 60);
        let soon = next.saturating_sub(at_ms) < 6 * DAY_MS as u64;
        Some(if soon {
            format!("{name} {hour:02}:{minute:02} ({})", self.zone_name)
        } else {
            let (y, m, d) = civil_from_days(day);
            format!(
                "{name} {y:04}-{m:02}-{d:02} {hour:02}:{minute:02} ({})",
                self.zone_name
            )
        })
    }

    fn is_holiday(&self, day: i64) -> bool {
        self.holidays.binary_search(&day).is_ok()
    }

    /// The UTC offset in force at `at` (ms) and the instant it next changes (ms; `i64::MAX`
    /// when it never does). None outside the supported range.
    fn segment(&self, at: i64) -> Option<(i64, i64)> {
        let ts = Timestamp::from_millisecond(at).ok()?;
        let offset = i64::from(self.tz.to_offset(ts).seconds()) * 1000;
        let next = self
            .tz
            .following(ts)
            .next()
            .map(|t| t.timestamp().as_millisecond())
            .filter(|&t| t > at)
            .unwrap_or(i64::MAX);
        Some((offset, next))
    }

    /// Calls `f` with each open piece `[open, close)` within `[from, until)`, in order.
    /// Pieces may touch (at local midnight or an offset change); callers merge them when it
    /// matters. Returns what `f` broke with, or None when `until` was reached.
    fn walk<B>(
        &self,
        from: i64,
        until: i64,
        mut f: impl FnMut(i64, i64) -> ControlFlow<B>,
    ) -> Option<B> {
        if self.never_open {
            return None;
        }
        let until = until.min(LAST_MS);
        let mut cur = from;
        while cur < until {
            // One stretch with a constant UTC offset, so local time = instant + offset.
            let (offset, change) = self.segment(cur)?;
            let seg_end = change.min(until);
            let mut day = (cur + offset).div_euclid(DAY_MS);
            loop {
                let midnight = day * DAY_MS - offset;
                if midnight >= seg_end {
                    break;
                }
                if !self.is_holiday(day) {
                    for &(start, end) in &self.week[weekday(day)] {
                        let open = (midnight + start).max(cur);
                        let close = (midnight + end).min(seg_end);
                        if open < close
                            && let ControlFlow::Break(b) = f(open, close)
                        {
                            return Some(b);
                        }
                    }
                }
                day += 1;
            }
            cur = seg_end;
        }
        None
    }
}

fn to_i64(ms: u64) -> Option<i64> {
    i64::try_from(ms).ok().filter(|&t| t <= LAST_MS)
}

/// Monday = 0 for a day counted from 1970-01-01 (a Thursday).
fn weekday(day: i64) -> usize {
    (day + 3).rem_euclid(7) as usize
}

/// `HH:MM-HH:MM` to local milliseconds since midnight; the end may be `24:00`.
fn parse_range(text: &str) -> Option<(i64, i64)> {
    let (start, end) = text.split_once('-')?;
    let start = parse_time(start.trim(), false)?;
    let end = parse_time(end.trim(), true)?;
    Some((start, end))
}

fn parse_time(text: &str, may_be_midnight_end: bool) -> Option<i64> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 || !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let h: i64 = h.parse().ok()?;
    let m: i64 = m.parse().ok()?;
    let valid = (h < 24 && m < 60) || (may_be_midnight_end && h == 24 && m == 0);
    valid.then_some((h * 60 + m) * MINUTE_MS)
}

/// `YYYY-MM-DD` to days since 1970-01-01.
fn parse_date(text: &str) -> Option<i64> {
    let text = text.trim();
    let mut parts = text.split('-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || y.len() != 4
        || m.len() != 2
        || d.len() != 2
        || !text.bytes().all(|b| b.is_ascii_digit() || b == b'-')
    {
        return None;
    }
    let (y, m, d): (i16, i8, i8) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    // The library knows month lengths and leap years.
    jiff::civil::Date::new(y, m, d).ok()?;
    Some(days_from_civil(i64::from(y), i64::from(m), i64::from(d)))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HOUR: u64 = 3_600_000;
    const MIN: u64 = 60_000;

    /// Unix ms of a zoned time such as `2026-03-27T16:50[Europe/Berlin]` (an offset picks
    /// the occurrence in a repeated hour: `2026-10-25T02:30+01:00[Europe/Berlin]`).
    fn at(s: &str) -> u64 {
        let z: jiff::ZonedDateTime = s.parse().unwrap();
        z.timestamp().as_millisecond() as u64
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn weekdays(zone: &str, ranges: &[&str]) -> BusinessHoursConfig {
        BusinessHoursConfig {
            time_zone: zone.into(),
            monday: strings(ranges),
            tuesday: strings(ranges),
            wednesday: strings(ranges),
            thursday: strings(ranges),
            friday: strings(ranges),
            ..Default::default()
        }
    }

    fn cal(c: &BusinessHoursConfig) -> BusinessCalendar {
        BusinessCalendar::from_config(c).unwrap()
    }

    #[test]
    fn office_hours_in_berlin() {
        let c = cal(&weekdays("Europe/Berlin", &["09:00-17:00"]));
        assert!(c.is_open(at("2026-03-25T10:00[Europe/Berlin]")));
        assert!(c.is_open(at("2026-03-25T09:00[Europe/Berlin]")));
        assert!(!c.is_open(at("2026-03-25T08:59:59[Europe/Berlin]")));
        assert!(
            !c.is_open(at("2026-03-25T17:00[Europe/Berlin]")),
            "end is exclusive"
        );
        assert!(
            !c.is_open(at("2026-03-28T12:00[Europe/Berlin]")),
            "Saturday"
        );
        assert!(!c.is_open(at("2026-03-29T12:00[Europe/Berlin]")), "Sunday");
        assert_eq!(
            c.next_close(at("2026-03-25T10:00[Europe/Berlin]")),
            Some(at("2026-03-25T17:00[Europe/Berlin]"))
        );
        assert_eq!(c.next_close(at("2026-03-25T18:00[Europe/Berlin]")), None);
        assert_eq!(
            c.next_open(at("2026-03-25T18:00[Europe/Berlin]")),
            Some(at("2026-03-26T09:00[Europe/Berlin]"))
        );
        assert_eq!(c.time_zone(), "Europe/Berlin");
    }

    #[test]
    fn friday_afternoon_deadline_is_monday_morning_across_spring_forward() {
        // Escalated Friday 16:50 with a 30-minute target: 10 minutes on Friday, 20 on
        // Monday. The clocks go forward on the Sunday in between; that changes nothing.
        let c = cal(&weekdays("Europe/Berlin", &["09:00-17:00"]));
        let start = at("2026-03-27T16:50[Europe/Berlin]");
        let due = c.add_business_time(start, 30 * MIN);
        assert_eq!(due, Some(at("2026-03-30T09:20[Europe/Berlin]")));
        assert_eq!(c.business_time_between(start, due.unwrap()), 30 * MIN);
        assert_eq!(
            c.describe_next_open(at("2026-03-27T17:30[Europe/Berlin]"))
                .as_deref(),
            Some("Monday 09:00 (Europe/Berlin)")
        );
        // Exactly at closing time: the deadline is the close itself, not Monday.
        assert_eq!(
            c.add_business_time(start, 10 * MIN),
            Some(at("2026-03-27T17:00[Europe/Berlin]"))
        );
        // A week of open time from Monday 09:00 ends Friday 17:00.
        assert_eq!(
            c.add_business_time(at("2026-03-30T09:00[Europe/Berlin]"), 40 * HOUR),
            Some(at("2026-04-03T17:00[Europe/Berlin]"))
        );
    }

    #[test]
    fn split_days() {
        let c = cal(&weekdays("Europe/Berlin", &["13:30-17:00", "09:00-12:30"]));
        let noon = at("2026-06-10T12:00[Europe/Berlin]");
        assert_eq!(
            c.add_business_time(noon, HOUR),
            Some(at("2026-06-10T14:00[Europe/Berlin]"))
        );
        assert_eq!(
            c.next_close(at("2026-06-10T10:00[Europe/Berlin]")),
            Some(at("2026-06-10T12:30[Europe/Berlin]"))
        );
        assert!(!c.is_open(at("2026-06-10T12:45[Europe/Berlin]")));
        assert_eq!(
            c.next_open(at("2026-06-10T12:45[Europe/Berlin]")),
            Some(at("2026-06-10T13:30[Europe/Berlin]"))
        );
        assert_eq!(
            c.business_time_between(
                at("2026-06-10T00:00[Europe/Berlin]"),
                at("2026-06-11T00:00[Europe/Berlin]")
            ),
            7 * HOUR
        );
        // Touching ranges make one open period.
        let joined = cal(&weekdays("Europe/Berlin", &["09:00-12:00", "12:00-17:00"]));
        assert_eq!(
            joined.next_close(at("2026-06-10T10:00[Europe/Berlin]")),
            Some(at("2026-06-10T17:00[Europe/Berlin]"))
        );
    }

    #[test]
    fn holidays_close_the_whole_local_day() {
        let mut config = weekdays("Europe/Berlin", &["09:00-17:00"]);
        config.holidays = strings(&["2026-12-24", "2026-12-25", "2026-12-31", "2026-12-24"]);
        let c = cal(&config);
        assert!(!c.is_open(at("2026-12-24T10:00[Europe/Berlin]")));
        assert!(c.is_open(at("2026-12-23T10:00[Europe/Berlin]")));
        let wed_evening = at("2026-12-23T17:00[Europe/Berlin]");
        assert_eq!(
            c.next_open(wed_evening),
            Some(at("2026-12-28T09:00[Europe/Berlin]"))
        );
        assert_eq!(
            c.add_business_time(at("2026-12-23T16:00[Europe/Berlin]"), 2 * HOUR),
            Some(at("2026-12-28T10:00[Europe/Berlin]"))
        );
        assert_eq!(
            c.describe_next_open(wed_evening).as_deref(),
            Some("Monday 09:00 (Europe/Berlin)")
        );
        // The holiday is the local date: 23:30 UTC on the 23rd is already the 24th here.
        let mut all_day = config.clone();
        all_day.wednesday = strings(&["00:00-24:00"]);
        all_day.thursday = strings(&["00:00-24:00"]);
        let c = cal(&all_day);
        assert!(!c.is_open(at("2026-12-23T23:30:00+00:00[UTC]")));
        assert!(c.is_open(at("2026-12-23T22:30:00+00:00[UTC]")));
    }

    #[test]
    fn a_long_closure_gets_a_date_in_the_description() {
        let mut config = weekdays("Europe/Berlin", &["09:00-17:00"]);
        config.holidays = (21..=31).map(|d| format!("2026-12-{d}")).collect();
        config.holidays.extend(strings(&["2027-01-01"]));
        let c = cal(&config);
        assert_eq!(
            c.describe_next_open(at("2026-12-19T12:00[Europe/Berlin]"))
                .as_deref(),
            Some("Monday 2027-01-04 09:00 (Europe/Berlin)")
        );
    }

    #[test]
    fn spring_forward_skips_what_the_clock_skips() {
        // 2026-03-29: Berlin's clocks jump from 02:00 to 03:00.
        let mut config = BusinessHoursConfig {
            time_zone: "Europe/Berlin".into(),
            sunday: strings(&["02:00-03:00"]),
            ..Default::default()
        };
        let c = cal(&config);
        let day_start = at("2026-03-29T00:00[Europe/Berlin]");
        let day_end = at("2026-03-30T00:00[Europe/Berlin]");
        assert_eq!(day_end - day_start, 23 * HOUR);
        assert_eq!(c.business_time_between(day_start, day_end), 0);
        assert_eq!(
            c.next_open(at("2026-03-28T12:00[Europe/Berlin]")),
            Some(at("2026-04-05T02:00[Europe/Berlin]"))
        );
        // A range around the gap is open for the real time the clock spends inside it.
        config.sunday = strings(&["01:00-04:00"]);
        let c = cal(&config);
        assert_eq!(c.business_time_between(day_start, day_end), 2 * HOUR);
        assert_eq!(
            c.add_business_time(at("2026-03-29T01:30[Europe/Berlin]"), HOUR),
            Some(at("2026-03-29T03:30[Europe/Berlin]"))
        );
        assert_eq!(
            c.next_close(at("2026-03-29T01:30[Europe/Berlin]")),
            Some(at("2026-03-29T04:00[Europe/Berlin]"))
        );
    }

    #[test]
    fn fall_back_counts_the_repeated_hour() {
        // 2026-10-25: Berlin's clocks go back from 03:00 to 02:00.
        let mut config = BusinessHoursConfig {
            time_zone: "Europe/Berlin".into(),
            sunday: strings(&["00:00-08:00"]),
            ..Default::default()
        };
        let c = cal(&config);
        let start = at("2026-10-25T00:00[Europe/Berlin]");
        let end = at("2026-10-25T08:00[Europe/Berlin]");
        assert_eq!(end - start, 9 * HOUR);
        assert_eq!(c.business_time_between(start, end), 9 * HOUR);
        assert_eq!(c.next_close(start), Some(end));
        assert_eq!(c.add_business_time(start, 9 * HOUR), Some(end));

        config.sunday = strings(&["02:00-03:00"]);
        let c = cal(&config);
        let first = at("2026-10-25T02:30+02:00[Europe/Berlin]");
        let second = at("2026-10-25T02:30+01:00[Europe/Berlin]");
        assert_eq!(second - first, HOUR);
        assert!(c.is_open(first) && c.is_open(second));
        assert_eq!(
            c.business_time_between(start, at("2026-10-26T00:00[Europe/Berlin]")),
            2 * HOUR
        );
        assert_eq!(
            c.next_close(first),
            Some(at("2026-10-25T03:00+01:00[Europe/Berlin]"))
        );
    }

    #[test]
    fn new_york_hours_and_dst() {
        let mut config = weekdays("America/New_York", &["08:00-18:00"]);
        config.saturday = strings(&["10:00-24:00"]);
        config.sunday = strings(&["00:00-02:00"]);
        let c = cal(&config);
        // Friday 17:00 plus two hours: one on Friday, one on Saturday from 10:00.
        assert_eq!(
            c.add_business_time(at("2026-10-30T17:00[America/New_York]"), 2 * HOUR),
            Some(at("2026-10-31T11:00[America/New_York]"))
        );
        // Saturday evening runs on into Sunday: one open period until Sunday 02:00, and
        // the clocks go back at 02:00 (EDT) on 2026-11-01, so 01:00-02:00 happens twice.
        let sat = at("2026-10-31T23:00[America/New_York]");
        assert_eq!(
            c.next_close(sat),
            Some(at("2026-11-01T02:00-05:00[America/New_York]"))
        );
        assert_eq!(
            c.business_time_between(sat, at("2026-11-01T12:00[America/New_York]")),
            4 * HOUR
        );
        // A Sunday 24-hour day on spring forward (2026-03-08) lasts 23 real hours.
        let mut config = weekdays("America/New_York", &[]);
        config.sunday = strings(&["00:00-24:00"]);
        let c = cal(&config);
        let sunday = at("2026-03-08T00:00[America/New_York]");
        assert_eq!(
            c.business_time_between(sunday, sunday + 48 * HOUR),
            23 * HOUR
        );
        assert_eq!(
            c.next_close(sunday),
            Some(at("2026-03-09T00:00[America/New_York]"))
        );
        assert_eq!(
            c.describe_next_open(at("2026-03-09T12:00[America/New_York]"))
                .as_deref(),
            Some("Sunday 00:00 (America/New_York)")
        );
    }

    #[test]
    fn always_open() {
        let c = BusinessCalendar::always_open();
        let t = at("2026-03-29T02:30+00:00[UTC]");
        assert!(c.is_open(t));
        assert_eq!(c.next_open(t), Some(t));
        assert_eq!(c.next_close(t), None);
        assert_eq!(c.add_business_time(t, 5 * HOUR), Some(t + 5 * HOUR));
        assert_eq!(c.add_business_time(u64::MAX, 1), None);
        assert_eq!(c.business_time_between(t, t + 5 * HOUR), 5 * HOUR);
        assert_eq!(c.business_time_between(t + 5, t), 0);
        assert!(c.describe_next_open(t).is_some());
    }

    #[test]
    fn open_around_the_clock_never_closes() {
        let mut config = weekdays("Asia/Kolkata", &["00:00-24:00"]);
        config.saturday = strings(&["00:00-24:00"]);
        config.sunday = strings(&["00:00-24:00"]);
        let c = cal(&config);
        let t = at("2026-05-01T12:00[Asia/Kolkata]");
        assert!(c.is_open(t));
        assert_eq!(c.next_close(t), None);
        assert_eq!(
            c.add_business_time(t, 30 * 24 * HOUR),
            Some(t + 30 * 24 * HOUR)
        );
        // A holiday is the one closure.
        config.holidays = strings(&["2026-05-03"]);
        let c = cal(&config);
        assert_eq!(c.next_close(t), Some(at("2026-05-03T00:00[Asia/Kolkata]")));
    }

    #[test]
    fn no_hours_at_all() {
        let c = cal(&BusinessHoursConfig {
            time_zone: "Europe/Berlin".into(),
            holidays: strings(&["2026-01-01"]),
            ..Default::default()
        });
        let t = at("2026-03-27T16:50[Europe/Berlin]");
        assert!(!c.is_open(t));
        assert_eq!(c.next_open(t), None);
        assert_eq!(c.next_close(t), None);
        assert_eq!(c.add_business_time(t, 1), None);
        assert_eq!(c.add_business_time(t, 0), Some(t));
        assert_eq!(c.business_time_between(t, t + 1000 * HOUR), 0);
        assert_eq!(c.describe_next_open(t), None);
    }

    #[test]
    fn hours_hidden_by_holidays_give_up_within_the_bound() {
        // Open only on Mondays, and every Monday of two years is a holiday.
        let mut config = BusinessHoursConfig {
            time_zone: "Europe/Berlin".into(),
            monday: strings(&["09:00-10:00"]),
            ..Default::default()
        };
        let first = days_from_civil(2026, 1, 5); // a Monday
        config.holidays = (0..110)
            .map(|w| {
                let (y, m, d) = civil_from_days(first + 7 * w);
                format!("{y:04}-{m:02}-{d:02}")
            })
            .collect();
        let c = cal(&config);
        let t = at("2026-01-01T00:00[Europe/Berlin]");
        assert_eq!(c.next_open(t), None, "nothing within {SEARCH_DAYS} days");
        // Deadlines look further, and find the first Monday after the holidays.
        let (y, m, d) = civil_from_days(first + 7 * 110);
        let monday = at(&format!("{y:04}-{m:02}-{d:02}T09:30[Europe/Berlin]"));
        assert_eq!(c.add_business_time(t, 30 * MIN), Some(monday));
        assert_eq!(c.add_business_time(u64::MAX, 1), None);
        assert!(!c.is_open(u64::MAX));
    }

    #[test]
    fn config_errors_quote_what_was_written() {
        let err = |c: BusinessHoursConfig| BusinessCalendar::from_config(&c).unwrap_err();
        let e = err(weekdays("Europe/Berlni", &["09:00-17:00"]));
        assert_eq!(e, CalendarError::UnknownTimeZone("Europe/Berlni".into()));
        assert!(e.to_string().contains("\"Europe/Berlni\""), "{e}");

        let e = err(weekdays("Europe/Berlin", &["17:00-09:00"]));
        assert!(matches!(
            e,
            CalendarError::BackwardRange { day: "monday", .. }
        ));
        let text = e.to_string();
        assert!(
            text.contains("\"17:00-09:00\"") && text.contains("midnight"),
            "{text}"
        );

        for bad in [
            "9-17",
            "09:00",
            "09:00-25:00",
            "24:00-24:00",
            "09:60-10:00",
            "ab:cd-10:00",
        ] {
            let e = err(weekdays("Europe/Berlin", &[bad]));
            assert!(matches!(e, CalendarError::BadRange { .. }), "{bad}: {e}");
            assert!(e.to_string().contains(bad), "{e}");
        }
        assert!(matches!(
            err(weekdays("Europe/Berlin", &["09:00-09:00"])),
            CalendarError::BackwardRange { .. }
        ));

        let mut c = weekdays("Europe/Berlin", &[]);
        c.friday = strings(&["13:00-17:00", "09:00-13:30"]);
        let e = err(c);
        assert_eq!(
            e.to_string(),
            "friday: \"09:00-13:30\" and \"13:00-17:00\" overlap"
        );

        for bad in [
            "2026-02-29",
            "2026-13-01",
            "26-12-25",
            "2026/12/25",
            "2026-12-25x",
        ] {
            let mut c = weekdays("Europe/Berlin", &["09:00-17:00"]);
            c.holidays = strings(&[bad]);
            let e = err(c);
            assert_eq!(e, CalendarError::BadDate(bad.into()));
            assert!(e.to_string().contains(bad), "{e}");
        }
        let mut c = weekdays("Europe/Berlin", &["09:00-17:00"]);
        c.holidays = strings(&["2028-02-29"]);
        assert!(BusinessCalendar::from_config(&c).is_ok(), "a leap day");
    }

    #[test]
    fn reads_from_toml() {
        let c: BusinessHoursConfig = toml::from_str(
            r#"
            time_zone = "Europe/Berlin"
            monday = ["09:00-12:30", "13:30-17:00"]
            friday = ["09:00-15:00"]
            holidays = ["2026-12-25"]
            "#,
        )
        .unwrap();
        assert_eq!(c.monday.len(), 2);
        assert!(c.tuesday.is_empty());
        let cal = BusinessCalendar::from_config(&c).unwrap();
        assert!(cal.is_open(at("2026-12-21T10:00[Europe/Berlin]")));
        let typo = toml::from_str::<BusinessHoursConfig>("time_zone = \"UTC\"\nmonady = []\n");
        assert!(typo.unwrap_err().to_string().contains("monady"));
    }

    #[test]
    fn civil_days_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(weekday(0), 3, "1970-01-01 was a Thursday");
        for day in [-800_000, -1, 0, 59, 60, 20_000, 2_900_000] {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
    }

    // Property tests over random calendars in zones with and without DST (Lord Howe moves
    // by 30 minutes) and random instants in 2026-2027.

    const ZONES: [&str; 5] = [
        "Europe/Berlin",
        "America/New_York",
        "Australia/Lord_Howe",
        "Asia/Kolkata",
        "UTC",
    ];
    const FROM: u64 = 1_767_225_600_000; // 2026-01-01T00:00Z
    const TO: u64 = 1_830_297_600_000; // 2028-01-01T00:00Z

    fn day_ranges() -> impl Strategy<Value = Vec<String>> {
        // Up to six boundaries in quarter hours (end of day = 96), paired into ranges.
        proptest::collection::btree_set(0u32..=96, 0..=6).prop_map(|points| {
            let points: Vec<u32> = points.into_iter().collect();
            points
                .chunks_exact(2)
                .map(|p| {
                    let hm = |q: u32| format!("{:02}:{:02}", q / 4, q % 4 * 15);
                    format!("{}-{}", hm(p[0]), hm(p[1]))
                })
                .collect()
        })
    }

    fn calendar() -> impl Strategy<Value = BusinessCalendar> {
        (
            0..ZONES.len(),
            proptest::collection::vec(day_ranges(), 7),
            proptest::collection::vec(0i64..730, 0..20),
        )
            .prop_map(|(zone, mut days, holidays)| {
                let base = days_from_civil(2026, 1, 1);
                let config = BusinessHoursConfig {
                    time_zone: ZONES[zone].into(),
                    sunday: days.pop().unwrap_or_default(),
                    saturday: days.pop().unwrap_or_default(),
                    friday: days.pop().unwrap_or_default(),
                    thursday: days.pop().unwrap_or_default(),
                    wednesday: days.pop().unwrap_or_default(),
                    tuesday: days.pop().unwrap_or_default(),
                    monday: days.pop().unwrap_or_default(),
                    holidays: holidays
                        .into_iter()
                        .map(|d| {
                            let (y, m, d) = civil_from_days(base + d);
                            format!("{y:04}-{m:02}-{d:02}")
                        })
                        .collect(),
                };
                BusinessCalendar::from_config(&config).unwrap()
            })
    }

    fn instant() -> impl Strategy<Value = u64> {
        FROM..TO
    }

    fn duration() -> impl Strategy<Value = u64> {
        prop_oneof![0u64..3 * HOUR, 0u64..30 * 24 * HOUR]
    }

    proptest! {
        #[test]
        fn deadline_is_exactly_the_business_time(c in calendar(), start in instant(), d in duration()) {
            if let Some(due) = c.add_business_time(start, d) {
                prop_assert!(due >= start);
                prop_assert_eq!(c.business_time_between(start, due), d);
                if d > 0 {
                    // Not a moment earlier.
                    prop_assert_eq!(c.business_time_between(start, due - 1), d - 1);
                }
            }
        }

        #[test]
        fn deadlines_grow_with_the_target(c in calendar(), start in instant(), a in duration(), b in duration()) {
            let (small, large) = (a.min(b), a.max(b));
            match (c.add_business_time(start, small), c.add_business_time(start, large)) {
                (Some(x), Some(y)) => prop_assert!(x <= y),
                (None, Some(_)) => prop_assert!(false, "a smaller target never met"),
                _ => {}
            }
        }

        #[test]
        fn next_open_is_open_and_nothing_before_it(c in calendar(), t in instant()) {
            prop_assert_eq!(c.is_open(t), c.next_open(t) == Some(t));
            if let Some(n) = c.next_open(t) {
                prop_assert!(n >= t);
                prop_assert!(c.is_open(n));
                prop_assert_eq!(c.business_time_between(t, n), 0);
                if n > t {
                    prop_assert!(!c.is_open(n - 1));
                }
            }
        }

        #[test]
        fn next_close_ends_the_open_period(c in calendar(), t in instant()) {
            match c.next_close(t) {
                Some(close) => {
                    prop_assert!(c.is_open(t));
                    prop_assert!(close > t);
                    prop_assert!(!c.is_open(close));
                    prop_assert!(c.is_open(close - 1));
                    prop_assert_eq!(c.business_time_between(t, close), close - t);
                }
                None => {
                    if c.is_open(t) {
                        let span = SEARCH_DAYS as u64 * 24 * HOUR;
                        prop_assert_eq!(c.business_time_between(t, t + span), span);
                    }
                }
            }
        }

        #[test]
        fn business_time_adds_up(c in calendar(), a in instant(), b in instant(), x in instant()) {
            let mut v = [a, b, x];
            v.sort_unstable();
            let [a, b, x] = v;
            let whole = c.business_time_between(a, x);
            prop_assert!(whole <= x - a);
            prop_assert_eq!(whole, c.business_time_between(a, b) + c.business_time_between(b, x));
            prop_assert_eq!(c.business_time_between(x, a), 0);
        }

        #[test]
        fn is_open_matches_counted_time(c in calendar(), t in instant()) {
            let counted = c.business_time_between(t, t + 1);
            prop_assert_eq!(counted == 1, c.is_open(t));
        }
    }
}
