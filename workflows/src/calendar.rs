//! 工作时间: the working-time calendar that time limits (时限) are counted in.
//!
//! Government service time limits are set in working time: "sign for it within 1 working day"
//! means seven office hours, not 24 clock hours, and an order placed on Friday evening before the
//! Spring Festival is not late on Saturday. A [`Calendar`] knows the working weekdays, the working
//! hours of a day (e.g. 08:30–12:00 and 14:00–17:30 China Standard Time), the public holidays and
//! the make-up working days (调休, a Saturday or Sunday worked to bridge a holiday), and answers
//! two questions: [`Calendar::add_working_duration`] (when is the deadline?) and
//! [`Calendar::working_time_between`] (how much working time has passed?).
//!
//! A [`TimeLimit`] is how a definition states a limit ("1 working day", "7 calendar days");
//! [`Calendar::due`] turns one into the instants of the yellow warning and the deadline.
//!
//! This module owns time arithmetic only; which clock runs in which workflow state is
//! [`definition`](crate::definition)'s business. Calendars are read from TOML
//! ([`Calendar::parse`]); `workflows/definitions/calendar-cn-mainland.toml` is the shipped one.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Deserialize;
use time::{Date, Duration, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset, Weekday};
use toml::Spanned;

use crate::definition::error::{read_file, LineIndex};
use crate::definition::{DefinitionError, Problem, ProblemKind};

/// China Standard Time, UTC+08:00, the zone every shipped calendar counts in.
pub const CHINA_STANDARD_TIME: UtcOffset = match UtcOffset::from_hms(8, 0, 0) {
    Ok(offset) => offset,
    Err(_) => panic!("+08:00 is a valid offset"),
};

/// A rule of calendars broken. Fix the calendar; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CalendarError {
    #[error("a calendar needs at least one working period a day")]
    NoWorkingHours,
    #[error("working period {0} must end after it starts")]
    EmptyPeriod(String),
    #[error("working periods {0} and {1} overlap")]
    OverlappingPeriods(String, String),
    #[error("a calendar needs at least one working weekday")]
    NoWorkingWeekdays,
    #[error("unknown weekday \"{0}\": expected monday … sunday")]
    UnknownWeekday(String),
    #[error("invalid working period \"{0}\": expected \"HH:MM-HH:MM\", e.g. \"08:30-12:00\"")]
    InvalidPeriod(String),
    #[error("invalid UTC offset \"{0}\": expected e.g. \"+08:00\"")]
    InvalidOffset(String),
    #[error("invalid date \"{0}\": expected a TOML local date such as 2026-10-01")]
    InvalidDate(String),
    #[error("holiday \"{0}\" ends before it starts")]
    HolidayEndsBeforeStart(String),
    #[error("{date} is in both \"{first}\" and \"{second}\"")]
    OverlappingHolidays {
        date: Date,
        first: String,
        second: String,
    },
    #[error("make-up working day {0} falls inside a holiday")]
    MakeUpDayInHoliday(Date),
    #[error("make-up working day {date} is a {weekday}, already a working day")]
    MakeUpDayAlreadyWorking { date: Date, weekday: Weekday },
    #[error("{date} is outside the years this calendar declares ({years})")]
    DateOutsideYears { date: Date, years: String },
}

/// A working-time calendar: which days are worked, which hours of them, in which UTC offset.
///
/// Holidays take a weekday off; make-up days (调休) put a weekend day on. Every working day has
/// the same working periods (the shipped calendar's 08:30–12:00 and 14:00–17:30: seven hours).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    name: String,
    offset: UtcOffset,
    /// Indexed by `Weekday::number_days_from_monday`.
    weekdays: [bool; 7],
    /// Sorted, disjoint, each ending after it starts.
    periods: Vec<(Time, Time)>,
    /// Date → the holiday's name.
    holidays: BTreeMap<Date, String>,
    make_up_days: BTreeSet<Date>,
    /// The years whose holidays are listed; empty when the calendar lists none.
    years: BTreeSet<i32>,
}

impl Calendar {
    /// A calendar working Monday to Friday in the given periods, with no holidays yet.
    pub fn new(
        name: impl Into<String>,
        offset: UtcOffset,
        periods: &[(Time, Time)],
    ) -> Result<Calendar, CalendarError> {
        let mut periods = periods.to_vec();
        periods.sort();
        if periods.is_empty() {
            return Err(CalendarError::NoWorkingHours);
        }
        for &(start, end) in &periods {
            if end <= start {
                return Err(CalendarError::EmptyPeriod(period_text(start, end)));
            }
        }
        for pair in periods.windows(2) {
            if pair[1].0 < pair[0].1 {
                return Err(CalendarError::OverlappingPeriods(
                    period_text(pair[0].0, pair[0].1),
                    period_text(pair[1].0, pair[1].1),
                ));
            }
        }
        Ok(Calendar {
            name: name.into(),
            offset,
            weekdays: [true, true, true, true, true, false, false],
            periods,
            holidays: BTreeMap::new(),
            make_up_days: BTreeSet::new(),
            years: BTreeSet::new(),
        })
    }

    /// Office hours of a mainland government service centre: Monday–Friday, 08:30–12:00 and
    /// 14:00–17:30 China Standard Time, no holidays. For tests and as a base to add holidays to;
    /// production uses the shipped `calendar-cn-mainland.toml`, which lists them.
    pub fn china_office_hours() -> Calendar {
        Calendar::new(
            "cn-office-hours",
            CHINA_STANDARD_TIME,
            &[(hm(8, 30), hm(12, 0)), (hm(14, 0), hm(17, 30))],
        )
        .expect("fixed periods are valid")
    }

    /// Works exactly these weekdays (replacing Monday–Friday).
    pub fn with_working_weekdays(mut self, days: &[Weekday]) -> Result<Calendar, CalendarError> {
        if days.is_empty() {
            return Err(CalendarError::NoWorkingWeekdays);
        }
        self.weekdays = [false; 7];
        for day in days {
            self.weekdays[usize::from(day.number_days_from_monday())] = true;
        }
        Ok(self)
    }

    /// Declares the years whose holidays this calendar lists, so a holiday typed with the wrong
    /// year is refused and the runtime can warn when the current year is missing
    /// ([`Calendar::covers_year`]).
    pub fn with_years(mut self, years: impl IntoIterator<Item = i32>) -> Calendar {
        self.years.extend(years);
        self
    }

    /// Takes `from..=to` off as the named holiday.
    pub fn with_holiday(
        mut self,
        name: &str,
        from: Date,
        to: Date,
    ) -> Result<Calendar, CalendarError> {
        if to < from {
            return Err(CalendarError::HolidayEndsBeforeStart(name.to_owned()));
        }
        let mut date = from;
        loop {
            self.check_year(date)?;
            if self.make_up_days.contains(&date) {
                return Err(CalendarError::MakeUpDayInHoliday(date));
            }
            if let Some(first) = self.holidays.insert(date, name.to_owned()) {
                return Err(CalendarError::OverlappingHolidays {
                    date,
                    first,
                    second: name.to_owned(),
                });
            }
            if date == to {
                return Ok(self);
            }
            date = next_day(date);
        }
    }

    /// Works `date` although it is not a working weekday (调休).
    pub fn with_make_up_day(mut self, date: Date) -> Result<Calendar, CalendarError> {
        self.check_year(date)?;
        if self.holidays.contains_key(&date) {
            return Err(CalendarError::MakeUpDayInHoliday(date));
        }
        if self.weekdays[usize::from(date.weekday().number_days_from_monday())] {
            return Err(CalendarError::MakeUpDayAlreadyWorking {
                date,
                weekday: date.weekday(),
            });
        }
        self.make_up_days.insert(date);
        Ok(self)
    }

    fn check_year(&self, date: Date) -> Result<(), CalendarError> {
        if self.years.is_empty() || self.years.contains(&date.year()) {
            Ok(())
        } else {
            Err(CalendarError::DateOutsideYears {
                date,
                years: self
                    .years
                    .iter()
                    .map(i32::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            })
        }
    }

    /// The name definitions refer to it by, e.g. `cn-mainland`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The UTC offset working hours are read in.
    pub fn offset(&self) -> UtcOffset {
        self.offset
    }

    /// Whether this calendar lists the holidays of `year`. Holidays are announced year by year
    /// (the State Council's notice each November), so a runtime should warn when the current
    /// year is missing: every deadline would silently count holidays as working days.
    pub fn covers_year(&self, year: i32) -> bool {
        self.years.contains(&year)
    }

    /// The working time of one working day (seven hours for the shipped calendar).
    pub fn working_day(&self) -> Duration {
        self.periods.iter().map(|&(start, end)| end - start).sum()
    }

    /// The holiday `date` falls in, if any.
    pub fn holiday(&self, date: Date) -> Option<&str> {
        self.holidays.get(&date).map(String::as_str)
    }

    /// Whether `date` (a local date in this calendar's offset) is worked.
    pub fn is_working_day(&self, date: Date) -> bool {
        if self.make_up_days.contains(&date) {
            return true;
        }
        if self.holidays.contains_key(&date) {
            return false;
        }
        self.weekdays[usize::from(date.weekday().number_days_from_monday())]
    }

    /// Whether `at` falls in working time.
    pub fn is_working_time(&self, at: OffsetDateTime) -> bool {
        let local = at.to_offset(self.offset);
        self.is_working_day(local.date())
            && self
                .periods
                .iter()
                .any(|&(start, end)| start <= local.time() && local.time() < end)
    }

    /// The instant `duration` of working time after `start`.
    ///
    /// Time outside working hours does not count: starting on Saturday, or at 07:00, counting
    /// begins at the next working period. A limit used up exactly at the end of a period ends
    /// there (17:30), not at the start of the next one. Returned in this calendar's offset.
    pub fn add_working_duration(
        &self,
        start: OffsetDateTime,
        duration: Duration,
    ) -> OffsetDateTime {
        let local = start.to_offset(self.offset);
        if duration <= Duration::ZERO {
            return local;
        }
        let mut remaining = duration;
        let mut date = local.date();
        let mut from = local.time();
        // Terminates: a week always holds a working weekday, and holidays are finitely many.
        loop {
            if self.is_working_day(date) {
                for &(period_start, period_end) in &self.periods {
                    if period_end <= from {
                        continue;
                    }
                    let begin = period_start.max(from);
                    let available = period_end - begin;
                    if remaining <= available {
                        return PrimitiveDateTime::new(date, begin).assume_offset(self.offset)
                            + remaining;
                    }
                    remaining -= available;
                }
            }
            date = next_day(date);
            from = Time::MIDNIGHT;
        }
    }

    /// The working time in `from..to`; zero when `to` is not after `from`.
    pub fn working_time_between(&self, from: OffsetDateTime, to: OffsetDateTime) -> Duration {
        if to <= from {
            return Duration::ZERO;
        }
        let (from, to) = (from.to_offset(self.offset), to.to_offset(self.offset));
        let mut total = Duration::ZERO;
        let mut date = from.date();
        while date <= to.date() {
            if self.is_working_day(date) {
                for &(period_start, period_end) in &self.periods {
                    let lo = if date == from.date() {
                        period_start.max(from.time())
                    } else {
                        period_start
                    };
                    let hi = if date == to.date() {
                        period_end.min(to.time())
                    } else {
                        period_end
                    };
                    if hi > lo {
                        total += hi - lo;
                    }
                }
            }
            date = next_day(date);
        }
        total
    }

    /// `start` plus a time limit: working limits in working time, calendar limits in clock time.
    pub fn add(&self, start: OffsetDateTime, limit: TimeLimit) -> OffsetDateTime {
        self.add_fraction(start, limit, 1.0)
    }

    /// When the yellow warning lights (`warn_at` of the limit used, e.g. 0.8) and when the
    /// deadline falls (red), for a clock started at `start`.
    pub fn due(&self, start: OffsetDateTime, limit: TimeLimit, warn_at: f64) -> Due {
        Due {
            warn_at: self.add_fraction(start, limit, warn_at),
            due_at: self.add(start, limit),
        }
    }

    fn add_fraction(
        &self,
        start: OffsetDateTime,
        limit: TimeLimit,
        fraction: f64,
    ) -> OffsetDateTime {
        let full = match limit {
            TimeLimit::WorkingDays(n) => self.working_day() * n,
            TimeLimit::WorkingHours(n) => Duration::hours(i64::from(n)),
            TimeLimit::WorkingMinutes(n) => Duration::minutes(i64::from(n)),
            TimeLimit::CalendarDays(n) => Duration::days(i64::from(n)),
            TimeLimit::CalendarHours(n) => Duration::hours(i64::from(n)),
            TimeLimit::CalendarSeconds(n) => Duration::seconds(i64::from(n)),
        };
        // Whole seconds: deadlines are shown to the minute and stored as RFC 3339.
        let part = Duration::seconds((full.as_seconds_f64() * fraction).round() as i64);
        if limit.is_working() {
            self.add_working_duration(start, part)
        } else {
            start.to_offset(self.offset) + part
        }
    }

    /// Reads a calendar from TOML. `file_name` is used in error messages only.
    ///
    /// ```toml
    /// name = "cn-mainland"
    /// utc_offset = "+08:00"
    /// working_weekdays = ["monday", "tuesday", "wednesday", "thursday", "friday"]
    /// working_hours = ["08:30-12:00", "14:00-17:30"]
    /// years = [2026]
    ///
    /// [[holidays]]
    /// name = "春节"
    /// from = 2026-02-15
    /// to = 2026-02-23
    /// make_up_days = [2026-02-14, 2026-02-28]
    /// ```
    pub fn parse(source: &str, file_name: &str) -> Result<Calendar, DefinitionError> {
        let lines = LineIndex::new(source);
        let raw: RawCalendar =
            toml::from_str(source).map_err(|error| lines.syntax(file_name, &error))?;
        raw.into_calendar(&lines)
            .map_err(|problem| DefinitionError::new(file_name, vec![problem]))
    }

    /// Reads and parses a calendar file.
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<Calendar, DefinitionError> {
        let (source, file) = read_file(path.as_ref())?;
        Calendar::parse(&source, &file)
    }
}

/// The two instants a running clock lights up at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// Yellow: most of the time is used (80% unless the definition says otherwise).
    pub warn_at: OffsetDateTime,
    /// Red: overdue from this instant on.
    pub due_at: OffsetDateTime,
}

/// A time limit as a definition states it: "1 working day", "4 working hours",
/// "7 calendar days", "24 hours".
///
/// A working day is the calendar's working time of one day, so "1 working day" from Monday 10:00
/// is Tuesday 10:00, and from Saturday is Monday 17:30.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeLimit {
    WorkingDays(u32),
    WorkingHours(u32),
    WorkingMinutes(u32),
    CalendarDays(u32),
    CalendarHours(u32),
    /// Clock seconds: for tests and drills, not for real service limits.
    CalendarSeconds(u32),
}

impl TimeLimit {
    /// Parses "N working day(s)", "N working hour(s)", "N working minute(s)",
    /// "N calendar day(s)" or "N hour(s)"; N ≥ 1.
    pub fn parse(text: &str) -> Option<TimeLimit> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let (count, unit) = match words.as_slice() {
            [count, rest @ ..] => (count.parse::<u32>().ok().filter(|&n| n > 0)?, rest),
            [] => return None,
        };
        let singular = count == 1;
        let unit_is = |one: &str, many: &str, word: &str| {
            if singular {
                word == one
            } else {
                word == many
            }
        };
        Some(match unit {
            ["working", u] if unit_is("day", "days", u) => TimeLimit::WorkingDays(count),
            ["working", u] if unit_is("hour", "hours", u) => TimeLimit::WorkingHours(count),
            ["working", u] if unit_is("minute", "minutes", u) => TimeLimit::WorkingMinutes(count),
            ["calendar", u] if unit_is("day", "days", u) => TimeLimit::CalendarDays(count),
            [u] if unit_is("hour", "hours", u) => TimeLimit::CalendarHours(count),
            [u] if unit_is("second", "seconds", u) => TimeLimit::CalendarSeconds(count),
            _ => return None,
        })
    }

    /// Counted in working time (by a [`Calendar`]) rather than clock time.
    pub fn is_working(self) -> bool {
        matches!(
            self,
            TimeLimit::WorkingDays(_) | TimeLimit::WorkingHours(_) | TimeLimit::WorkingMinutes(_)
        )
    }

    /// The limit as staff read it, e.g. 1 个工作日, 4 个工作小时, 7 个自然日.
    pub fn name_zh(self) -> String {
        match self {
            TimeLimit::WorkingDays(n) => format!("{n} 个工作日"),
            TimeLimit::WorkingHours(n) => format!("{n} 个工作小时"),
            TimeLimit::WorkingMinutes(n) => format!("{n} 分钟（工作时间）"),
            TimeLimit::CalendarDays(n) => format!("{n} 个自然日"),
            TimeLimit::CalendarHours(n) => format!("{n} 小时"),
            TimeLimit::CalendarSeconds(n) => format!("{n} 秒"),
        }
    }
}

impl fmt::Display for TimeLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (n, unit) = match *self {
            TimeLimit::WorkingDays(n) => (n, "working day"),
            TimeLimit::WorkingHours(n) => (n, "working hour"),
            TimeLimit::WorkingMinutes(n) => (n, "working minute"),
            TimeLimit::CalendarDays(n) => (n, "calendar day"),
            TimeLimit::CalendarHours(n) => (n, "hour"),
            TimeLimit::CalendarSeconds(n) => (n, "second"),
        };
        write!(f, "{n} {unit}{}", if n == 1 { "" } else { "s" })
    }
}

fn hm(hour: u8, minute: u8) -> Time {
    Time::from_hms(hour, minute, 0).expect("valid clock time")
}

fn period_text(start: Time, end: Time) -> String {
    format!(
        "{:02}:{:02}-{:02}:{:02}",
        start.hour(),
        start.minute(),
        end.hour(),
        end.minute()
    )
}

fn next_day(date: Date) -> Date {
    date.next_day()
        .expect("working time does not run past the year 9999")
}

// ---------------------------------------------------------------------------------------------
// The TOML form
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCalendar {
    name: Spanned<String>,
    utc_offset: Spanned<String>,
    working_weekdays: Spanned<Vec<Spanned<String>>>,
    working_hours: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    years: Vec<i32>,
    #[serde(default)]
    holidays: Vec<Spanned<RawHoliday>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHoliday {
    name: String,
    from: Spanned<toml::value::Datetime>,
    to: Spanned<toml::value::Datetime>,
    #[serde(default)]
    make_up_days: Vec<Spanned<toml::value::Datetime>>,
}

impl RawCalendar {
    fn into_calendar(self, lines: &LineIndex) -> Result<Calendar, Problem> {
        let at = |line: usize| {
            move |error: CalendarError| Problem {
                line,
                kind: ProblemKind::Calendar(error),
            }
        };
        let name = self.name.into_inner();
        if !is_calendar_name(&name) {
            return Err(Problem {
                line: 1,
                kind: ProblemKind::InvalidName {
                    what: "calendar",
                    name,
                },
            });
        }
        let offset_line = lines.of(&self.utc_offset);
        let offset = parse_offset(self.utc_offset.get_ref())
            .ok_or_else(|| CalendarError::InvalidOffset(self.utc_offset.get_ref().clone()))
            .map_err(at(offset_line))?;
        let mut periods = Vec::new();
        for period in self.working_hours.get_ref() {
            let parsed = parse_period(period.get_ref())
                .ok_or_else(|| CalendarError::InvalidPeriod(period.get_ref().clone()))
                .map_err(at(lines.of(period)))?;
            periods.push(parsed);
        }
        let mut calendar = Calendar::new(name, offset, &periods)
            .map_err(at(lines.of(&self.working_hours)))?
            .with_years(self.years);
        let mut weekdays = Vec::new();
        for day in self.working_weekdays.get_ref() {
            let parsed = parse_weekday(day.get_ref())
                .ok_or_else(|| CalendarError::UnknownWeekday(day.get_ref().clone()))
                .map_err(at(lines.of(day)))?;
            weekdays.push(parsed);
        }
        calendar = calendar
            .with_working_weekdays(&weekdays)
            .map_err(at(lines.of(&self.working_weekdays)))?;
        // Holidays first, then make-up days, so a make-up day inside any holiday is caught
        // whatever order the file lists them in.
        for holiday in &self.holidays {
            let line = lines.of(holiday);
            let (from, to) = (
                toml_date(&holiday.get_ref().from)
                    .map_err(at(lines.of(&holiday.get_ref().from)))?,
                toml_date(&holiday.get_ref().to).map_err(at(lines.of(&holiday.get_ref().to)))?,
            );
            calendar = calendar
                .with_holiday(&holiday.get_ref().name, from, to)
                .map_err(at(line))?;
        }
        for holiday in &self.holidays {
            for day in &holiday.get_ref().make_up_days {
                let line = lines.of(day);
                calendar = calendar
                    .with_make_up_day(toml_date(day).map_err(at(line))?)
                    .map_err(at(line))?;
            }
        }
        Ok(calendar)
    }
}

fn is_calendar_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn toml_date(value: &Spanned<toml::value::Datetime>) -> Result<Date, CalendarError> {
    let datetime = value.get_ref();
    let invalid = || CalendarError::InvalidDate(datetime.to_string());
    match (datetime.date, datetime.time, datetime.offset) {
        (Some(date), None, None) => Date::from_calendar_date(
            i32::from(date.year),
            Month::try_from(date.month).map_err(|_| invalid())?,
            date.day,
        )
        .map_err(|_| invalid()),
        _ => Err(invalid()),
    }
}

fn parse_offset(text: &str) -> Option<UtcOffset> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let (hours, minutes) = rest.split_once(':')?;
    let (hours, minutes): (i8, i8) = (hours.parse().ok()?, minutes.parse().ok()?);
    if hours.abs() != hours || minutes.abs() != minutes {
        return None;
    }
    UtcOffset::from_hms(sign * hours, sign * minutes, 0).ok()
}

fn parse_period(text: &str) -> Option<(Time, Time)> {
    let (start, end) = text.split_once('-')?;
    Some((parse_clock(start.trim())?, parse_clock(end.trim())?))
}

fn parse_clock(text: &str) -> Option<Time> {
    let (hour, minute) = text.split_once(':')?;
    if hour.len() != 2 || minute.len() != 2 {
        return None;
    }
    Time::from_hms(hour.parse().ok()?, minute.parse().ok()?, 0).ok()
}

fn parse_weekday(text: &str) -> Option<Weekday> {
    Some(match text {
        "monday" => Weekday::Monday,
        "tuesday" => Weekday::Tuesday,
        "wednesday" => Weekday::Wednesday,
        "thursday" => Weekday::Thursday,
        "friday" => Weekday::Friday,
        "saturday" => Weekday::Saturday,
        "sunday" => Weekday::Sunday,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    //! Specifications of working time. Unless a test says otherwise, the calendar is office
    //! hours (Mon–Fri 08:30–12:00, 14:00–17:30 +08:00) in October 2026, around the National Day
    //! holiday: 1–7 October off, Sunday 20 September and Saturday 10 October worked (调休).

    use time::macros::{date, datetime, time};

    use super::*;

    /// Office hours with the 2026 National Day holiday and its make-up days.
    fn given_national_day_2026() -> Calendar {
        Calendar::china_office_hours()
            .with_years([2026])
            .with_holiday("国庆节", date!(2026 - 10 - 01), date!(2026 - 10 - 07))
            .unwrap()
            .with_make_up_day(date!(2026 - 09 - 20))
            .unwrap()
            .with_make_up_day(date!(2026 - 10 - 10))
            .unwrap()
    }

    fn hours(h: i64) -> Duration {
        Duration::hours(h)
    }

    #[test]
    fn a_working_day_is_seven_office_hours() {
        assert_eq!(Calendar::china_office_hours().working_day(), hours(7));
    }

    #[test]
    fn adding_within_one_morning_stays_in_the_morning() {
        let calendar = Calendar::china_office_hours();
        // Given Monday 9:00, when two working hours are added, then it is 11:00 the same morning.
        assert_eq!(
            calendar.add_working_duration(datetime!(2026-11-02 09:00 +8), hours(2)),
            datetime!(2026-11-02 11:00 +8)
        );
    }

    #[test]
    fn the_lunch_break_does_not_count() {
        let calendar = Calendar::china_office_hours();
        // Given Monday 11:00, when two working hours are added, then one is before lunch and
        // one after: 15:00.
        assert_eq!(
            calendar.add_working_duration(datetime!(2026-11-02 11:00 +8), hours(2)),
            datetime!(2026-11-02 15:00 +8)
        );
    }

    #[test]
    fn a_limit_used_up_at_closing_time_ends_at_closing_time() {
        let calendar = Calendar::china_office_hours();
        assert_eq!(
            calendar.add_working_duration(datetime!(2026-11-02 14:00 +8), Duration::minutes(210)),
            datetime!(2026-11-02 17:30 +8),
            "not 08:30 the next morning"
        );
    }

    #[test]
    fn overnight_counting_resumes_next_morning() {
        let calendar = Calendar::china_office_hours();
        // Given Monday 16:30, when four working hours are added, then one is used on Monday and
        // three on Tuesday morning: 11:30.
        assert_eq!(
            calendar.add_working_duration(datetime!(2026-11-02 16:30 +8), hours(4)),
            datetime!(2026-11-03 11:30 +8)
        );
    }

    #[test]
    fn one_working_day_from_mid_morning_is_the_same_time_next_day() {
        let calendar = Calendar::china_office_hours();
        assert_eq!(
            calendar.add(datetime!(2026-11-02 10:00 +8), TimeLimit::WorkingDays(1)),
            datetime!(2026-11-03 10:00 +8)
        );
    }

    #[test]
    fn the_weekend_is_skipped() {
        let calendar = Calendar::china_office_hours();
        // Given Friday 16:00, when one working day is added, then 1.5 hours are used on Friday
        // and 5.5 on Monday (3.5 in the morning, 2 in the afternoon): Monday 16:00.
        assert_eq!(
            calendar.add(datetime!(2026-11-06 16:00 +8), TimeLimit::WorkingDays(1)),
            datetime!(2026-11-09 16:00 +8)
        );
    }

    #[test]
    fn starting_on_a_weekend_counts_from_monday_morning() {
        let calendar = Calendar::china_office_hours();
        assert_eq!(
            calendar.add(datetime!(2026-11-07 22:15 +8), TimeLimit::WorkingDays(1)),
            datetime!(2026-11-09 17:30 +8),
            "an order placed on Saturday night is due at Monday's close"
        );
    }

    #[test]
    fn starting_before_opening_counts_from_opening() {
        let calendar = Calendar::china_office_hours();
        assert_eq!(
            calendar.add_working_duration(datetime!(2026-11-02 06:45 +8), hours(1)),
            datetime!(2026-11-02 09:30 +8)
        );
    }

    #[test]
    fn starting_in_the_lunch_break_counts_from_the_afternoon() {
        let calendar = Calendar::china_office_hours();
        assert_eq!(
            calendar.add_working_duration(datetime!(2026-11-02 12:40 +8), hours(1)),
            datetime!(2026-11-02 15:00 +8)
        );
    }

    #[test]
    fn starting_after_closing_counts_from_the_next_morning() {
        let calendar = Calendar::china_office_hours();
        assert_eq!(
            calendar.add(datetime!(2026-11-02 19:00 +8), TimeLimit::WorkingHours(4)),
            datetime!(2026-11-03 14:30 +8)
        );
    }

    #[test]
    fn a_holiday_week_is_skipped() {
        let calendar = given_national_day_2026();
        // Given Wednesday 30 September 17:00, when one working day is added, then half an hour
        // is used that day and the other 6.5 hours on Thursday 8 October, after the holiday.
        assert_eq!(
            calendar.add(datetime!(2026-09-30 17:00 +8), TimeLimit::WorkingDays(1)),
            datetime!(2026-10-08 17:00 +8)
        );
    }

    #[test]
    fn a_make_up_saturday_is_worked() {
        let calendar = given_national_day_2026();
        // Given Friday 9 October 17:00, when one working day is added, then Saturday 10
        // October (调休) counts: 0.5 h on Friday, 6.5 h on Saturday.
        assert_eq!(
            calendar.add(datetime!(2026-10-09 17:00 +8), TimeLimit::WorkingDays(1)),
            datetime!(2026-10-10 17:00 +8)
        );
        assert!(calendar.is_working_day(date!(2026 - 10 - 10)));
        assert!(
            !calendar.is_working_day(date!(2026 - 10 - 17)),
            "an ordinary Saturday"
        );
    }

    #[test]
    fn a_make_up_sunday_before_the_holiday_is_worked() {
        let calendar = given_national_day_2026();
        assert_eq!(
            calendar.add(datetime!(2026-09-19 10:00 +8), TimeLimit::WorkingHours(2)),
            datetime!(2026-09-20 10:30 +8),
            "Saturday 19 is off, Sunday 20 September is worked"
        );
    }

    #[test]
    fn holidays_are_named_and_not_worked() {
        let calendar = given_national_day_2026();
        assert_eq!(calendar.holiday(date!(2026 - 10 - 05)), Some("国庆节"));
        assert!(!calendar.is_working_day(date!(2026 - 10 - 05)));
        assert!(!calendar.is_working_time(datetime!(2026-10-05 10:00 +8)));
        assert!(calendar.is_working_time(datetime!(2026-10-08 10:00 +8)));
    }

    #[test]
    fn instants_in_other_offsets_are_read_in_china_standard_time() {
        let calendar = Calendar::china_office_hours();
        // Given 01:00 UTC on Monday (09:00 in Beijing), when one working hour is added, then it
        // is 10:00 in Beijing.
        assert_eq!(
            calendar.add_working_duration(datetime!(2026-11-02 01:00 UTC), hours(1)),
            datetime!(2026-11-02 10:00 +8)
        );
    }

    #[test]
    fn working_time_between_counts_only_office_hours() {
        let calendar = given_national_day_2026();
        let between = |a, b| calendar.working_time_between(a, b);
        assert_eq!(
            between(
                datetime!(2026-11-02 09:00 +8),
                datetime!(2026-11-02 15:00 +8)
            ),
            hours(4),
            "09:00–12:00 and 14:00–15:00"
        );
        assert_eq!(
            between(
                datetime!(2026-11-06 17:00 +8),
                datetime!(2026-11-09 09:30 +8)
            ),
            Duration::minutes(90),
            "Friday's last half hour and Monday's first hour"
        );
        assert_eq!(
            between(
                datetime!(2026-09-30 08:00 +8),
                datetime!(2026-10-09 08:00 +8)
            ),
            hours(14),
            "30 September and 8 October only"
        );
        assert_eq!(
            between(
                datetime!(2026-11-02 15:00 +8),
                datetime!(2026-11-02 09:00 +8)
            ),
            Duration::ZERO,
            "backwards is zero"
        );
        assert_eq!(
            between(
                datetime!(2026-11-07 09:00 +8),
                datetime!(2026-11-08 18:00 +8)
            ),
            Duration::ZERO,
            "a weekend"
        );
    }

    #[test]
    fn adding_then_measuring_gives_back_the_duration() {
        let calendar = given_national_day_2026();
        let starts = [
            datetime!(2026-09-18 07:00 +8),
            datetime!(2026-09-30 11:59 +8),
            datetime!(2026-10-03 12:00 +8),
            datetime!(2026-10-09 17:29 +8),
        ];
        for start in starts {
            for minutes in [1, 59, 210, 420, 421, 2000] {
                let duration = Duration::minutes(minutes);
                let end = calendar.add_working_duration(start, duration);
                assert_eq!(
                    calendar.working_time_between(start, end),
                    duration,
                    "{start} + {minutes} min = {end}"
                );
            }
        }
    }

    #[test]
    fn the_yellow_light_comes_at_eighty_percent_of_working_time() {
        let calendar = Calendar::china_office_hours();
        let due = calendar.due(
            datetime!(2026-11-02 08:30 +8),
            TimeLimit::WorkingDays(1),
            0.8,
        );
        // 80% of 7 h = 5 h 36 min: 3.5 h in the morning, 2 h 6 min in the afternoon.
        assert_eq!(due.warn_at, datetime!(2026-11-02 16:06 +8));
        assert_eq!(due.due_at, datetime!(2026-11-02 17:30 +8));
    }

    #[test]
    fn calendar_days_count_the_clock_not_office_hours() {
        let calendar = given_national_day_2026();
        let due = calendar.due(
            datetime!(2026-09-30 20:00 +8),
            TimeLimit::CalendarDays(7),
            0.8,
        );
        assert_eq!(due.due_at, datetime!(2026-10-07 20:00 +8), "holidays count");
        assert_eq!(
            due.warn_at,
            datetime!(2026-10-06 10:24 +8),
            "5.6 days later"
        );
    }

    #[test]
    fn time_limits_parse_and_print() {
        for (text, limit) in [
            ("1 working day", TimeLimit::WorkingDays(1)),
            ("5 working days", TimeLimit::WorkingDays(5)),
            ("4 working hours", TimeLimit::WorkingHours(4)),
            ("30 working minutes", TimeLimit::WorkingMinutes(30)),
            ("7 calendar days", TimeLimit::CalendarDays(7)),
            ("24 hours", TimeLimit::CalendarHours(24)),
        ] {
            assert_eq!(TimeLimit::parse(text), Some(limit), "{text}");
            assert_eq!(limit.to_string(), text);
        }
        for bad in [
            "",
            "1",
            "0 working days",
            "1 working days",
            "2 working day",
            "3 weeks",
        ] {
            assert_eq!(TimeLimit::parse(bad), None, "{bad:?}");
        }
        assert_eq!(TimeLimit::WorkingDays(1).name_zh(), "1 个工作日");
    }

    #[test]
    fn building_refuses_inconsistent_calendars() {
        let office = Calendar::china_office_hours;
        assert_eq!(
            Calendar::new("x", CHINA_STANDARD_TIME, &[]),
            Err(CalendarError::NoWorkingHours)
        );
        assert_eq!(
            Calendar::new(
                "x",
                CHINA_STANDARD_TIME,
                &[(time!(8:00), time!(12:00)), (time!(11:00), time!(13:00))]
            ),
            Err(CalendarError::OverlappingPeriods(
                "08:00-12:00".into(),
                "11:00-13:00".into()
            ))
        );
        assert_eq!(
            office().with_make_up_day(date!(2026 - 10 - 12)),
            Err(CalendarError::MakeUpDayAlreadyWorking {
                date: date!(2026 - 10 - 12),
                weekday: Weekday::Monday
            })
        );
        assert_eq!(
            given_national_day_2026().with_make_up_day(date!(2026 - 10 - 03)),
            Err(CalendarError::MakeUpDayInHoliday(date!(2026 - 10 - 03)))
        );
        assert!(matches!(
            given_national_day_2026().with_holiday(
                "中秋节",
                date!(2026 - 10 - 07),
                date!(2026 - 10 - 08)
            ),
            Err(CalendarError::OverlappingHolidays { .. })
        ));
        assert!(matches!(
            given_national_day_2026().with_holiday(
                "元旦",
                date!(2027 - 01 - 01),
                date!(2027 - 01 - 01)
            ),
            Err(CalendarError::DateOutsideYears { .. })
        ));
    }

    const CALENDAR: &str = r#"name = "test-cn"
utc_offset = "+08:00"
working_weekdays = ["monday", "tuesday", "wednesday", "thursday", "friday"]
working_hours = ["08:30-12:00", "14:00-17:30"]
years = [2026]

[[holidays]]
name = "国庆节"
from = 2026-10-01
to = 2026-10-07
make_up_days = [2026-09-20, 2026-10-10]
"#;

    #[test]
    fn a_calendar_file_reads_like_the_built_one() {
        let parsed = Calendar::parse(CALENDAR, "test.toml").unwrap();
        let built = given_national_day_2026();
        assert_eq!(parsed.name(), "test-cn");
        assert_eq!(parsed.working_day(), built.working_day());
        assert_eq!(parsed.holidays, built.holidays);
        assert_eq!(parsed.make_up_days, built.make_up_days);
        assert!(parsed.covers_year(2026));
        assert!(!parsed.covers_year(2027));
    }

    #[test]
    fn calendar_file_errors_name_the_line() {
        let cases = [
            (
                CALENDAR.replace("\"friday\"", "\"fryday\""),
                "test.toml:3: unknown weekday \"fryday\": expected monday … sunday",
            ),
            (
                CALENDAR.replace("14:00-17:30", "14:00-1730"),
                "test.toml:4: invalid working period \"14:00-1730\": expected \"HH:MM-HH:MM\", e.g. \"08:30-12:00\"",
            ),
            (
                CALENDAR.replace("2026-10-10]", "2026-10-12]"),
                "test.toml:11: make-up working day 2026-10-12 is a Monday, already a working day",
            ),
            (
                CALENDAR.replace("2026-09-20,", "2026-10-03,"),
                "test.toml:11: make-up working day 2026-10-03 falls inside a holiday",
            ),
            (
                CALENDAR.replace("to = 2026-10-07", "to = 2027-10-07"),
                "test.toml:7: 2027-01-01 is outside the years this calendar declares (2026)",
            ),
            (
                CALENDAR.replace("utc_offset", "timezone"),
                "test.toml:2: unknown field `timezone`, expected one of `name`, `utc_offset`, `working_weekdays`, `working_hours`, `years`, `holidays`",
            ),
        ];
        for (source, expected) in cases {
            let error = Calendar::parse(&source, "test.toml").unwrap_err();
            assert_eq!(error.to_string(), expected);
        }
    }
}
