//! A site's deployment windows (`federation.sites.<site>.schedule`): is a moment inside one, and
//! when does the next one open (`sync --deploy`).
//!
//! Pipeline position: `SiteDeploy::schedule` + a time → **here** (pure, tested with plain
//! values) → `sync --deploy` deploys only inside a window and otherwise says when the next one
//! opens.
//!
//! Semantics, all in UTC: a window `{days, from, to}` opens at `from` on each of its `days`
//! (every day when `days` is empty) and closes at `to`, exclusive; `to` before `from` wraps past
//! midnight, so the window belongs to the day it opens (`fri 22:00-04:00` includes Saturday
//! 03:00, not Friday 03:00); `to` equal to `from` is a whole day from `from`. No schedule at all
//! means any time.

use crate::model::lifecycle::Window;

const MINUTES_PER_DAY: i64 = 24 * 60;

/// Day of the week (0 = Monday) and minute of the day of a Unix time (seconds, UTC).
pub fn day_and_minute(unix_seconds: i64) -> (u8, u16) {
    let minutes = unix_seconds.div_euclid(60);
    let days = minutes.div_euclid(MINUTES_PER_DAY);
    // 1970-01-01 was a Thursday: day 3 when Monday is 0.
    let weekday = (days + 3).rem_euclid(7) as u8;
    let minute = minutes.rem_euclid(MINUTES_PER_DAY) as u16;
    (weekday, minute)
}

fn opens_on(window: &Window, day: u8) -> bool {
    window.days.is_empty() || window.days.contains(&day)
}

/// The window's length in minutes (a whole day when `to` equals `from`).
fn length(window: &Window) -> i64 {
    let (from, to) = (i64::from(window.from), i64::from(window.to));
    match to - from {
        0 => MINUTES_PER_DAY,
        d if d < 0 => d + MINUTES_PER_DAY,
        d => d,
    }
}

/// Whether `window` is open at `unix_seconds`.
pub fn window_open(window: &Window, unix_seconds: i64) -> bool {
    let (day, minute) = day_and_minute(unix_seconds);
    let minute = i64::from(minute);
    // Opened today, or (wrapping) yesterday and not closed yet.
    let since_today = minute - i64::from(window.from);
    if since_today >= 0 && since_today < length(window) && opens_on(window, day) {
        return true;
    }
    let since_yesterday = since_today + MINUTES_PER_DAY;
    since_yesterday < length(window) && opens_on(window, (day + 6) % 7)
}

/// Whether a deploy may run at `unix_seconds` (no windows: any time).
pub fn is_open(schedule: &[Window], unix_seconds: i64) -> bool {
    schedule.is_empty() || schedule.iter().any(|w| window_open(w, unix_seconds))
}

/// When the next window opens at or after `unix_seconds` (Unix seconds, on a minute), or `None`
/// when the schedule is empty or a window is open now.
pub fn next_open(schedule: &[Window], unix_seconds: i64) -> Option<i64> {
    if is_open(schedule, unix_seconds) {
        return None;
    }
    let start_minute = unix_seconds.div_euclid(60) + 1;
    // Every window opens within a week: look at each of the next 8 days' opening minutes.
    let today = start_minute.div_euclid(MINUTES_PER_DAY);
    (today..today + 8)
        .flat_map(|day| {
            schedule.iter().filter_map(move |w| {
                let weekday = (day + 3).rem_euclid(7) as u8;
                opens_on(w, weekday).then_some(day * MINUTES_PER_DAY + i64::from(w.from))
            })
        })
        .filter(|minute| *minute >= start_minute)
        .min()
        .map(|minute| minute * 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(days: &[u8], from: &str, to: &str) -> Window {
        let clock = |s: &str| {
            let (h, m) = s.split_once(':').unwrap();
            h.parse::<u16>().unwrap() * 60 + m.parse::<u16>().unwrap()
        };
        let mut w = Window {
            days: Vec::new(),
            from: 0,
            to: 0,
        };
        w.days = days.to_vec();
        w.from = clock(from);
        w.to = clock(to);
        w
    }

    /// 2026-11-30 is a Monday.
    fn at(day_of_month: i64, hh: i64, mm: i64) -> i64 {
        let monday = 1_795_996_800; // 2026-11-30T00:00:00Z
        monday + (day_of_month - 30) * 86_400 + hh * 3600 + mm * 60
    }

    const MON: u8 = 0;
    const FRI: u8 = 4;
    const SAT: u8 = 5;

    #[test]
    fn days_of_the_week() {
        assert_eq!(day_and_minute(0), (3, 0), "1970-01-01 was a Thursday");
        assert_eq!(day_and_minute(at(30, 0, 0)), (MON, 0));
        assert_eq!(day_and_minute(at(30, 23, 59)), (MON, 23 * 60 + 59));
        assert_eq!(day_and_minute(at(34, 12, 30)), (FRI, 12 * 60 + 30));
        assert_eq!(day_and_minute(-60), (2, 23 * 60 + 59), "before 1970");
    }

    #[test]
    fn inside_and_outside() {
        let office = [window(&[MON, 1, 2, 3, FRI], "09:00", "17:00")];
        assert!(is_open(&office, at(30, 9, 0)), "from is inclusive");
        assert!(is_open(&office, at(30, 16, 59)));
        assert!(!is_open(&office, at(30, 17, 0)), "to is exclusive");
        assert!(!is_open(&office, at(30, 8, 59)));
        assert!(!is_open(&office, at(35, 12, 0)), "Saturday");
        assert!(is_open(&[], at(35, 12, 0)), "no schedule: any time");
    }

    #[test]
    fn wrapping_past_midnight_belongs_to_the_day_it_opens() {
        let night = [window(&[FRI], "22:00", "04:00")];
        assert!(is_open(&night, at(34, 22, 0)), "Friday 22:00");
        assert!(is_open(&night, at(35, 3, 59)), "Saturday 03:59");
        assert!(!is_open(&night, at(35, 4, 0)), "Saturday 04:00");
        assert!(
            !is_open(&night, at(34, 3, 0)),
            "Friday 03:00 is Thursday's window"
        );
        assert!(!is_open(&night, at(35, 22, 30)), "Saturday evening");
        // Every day: open across each midnight.
        let nightly = [window(&[], "23:30", "00:30")];
        assert!(is_open(&nightly, at(30, 0, 10)));
        assert!(is_open(&nightly, at(30, 23, 45)));
        assert!(!is_open(&nightly, at(30, 12, 0)));
        // from == to: a whole day.
        let all_day = [window(&[SAT], "06:00", "06:00")];
        assert!(is_open(&all_day, at(35, 6, 0)));
        assert!(is_open(&all_day, at(36, 5, 59)));
        assert!(!is_open(&all_day, at(36, 6, 0)));
    }

    #[test]
    fn the_next_window() {
        let office = [window(&[MON, 1, 2, 3, FRI], "09:00", "17:00")];
        assert_eq!(next_open(&office, at(30, 10, 0)), None, "open now");
        assert_eq!(next_open(&office, at(30, 8, 0)), Some(at(30, 9, 0)));
        assert_eq!(next_open(&office, at(30, 17, 0)), Some(at(31, 9, 0)));
        // Friday evening: Monday morning.
        assert_eq!(next_open(&office, at(34, 18, 0)), Some(at(37, 9, 0)));
        // The earliest of several windows.
        let two = [
            window(&[SAT], "10:00", "11:00"),
            window(&[FRI], "22:00", "04:00"),
        ];
        assert_eq!(next_open(&two, at(34, 12, 0)), Some(at(34, 22, 0)));
        assert_eq!(next_open(&two, at(35, 5, 0)), Some(at(35, 10, 0)));
        // A week ahead: the same weekday, later.
        let monday = [window(&[MON], "09:00", "10:00")];
        assert_eq!(next_open(&monday, at(30, 11, 0)), Some(at(37, 9, 0)));
        assert_eq!(next_open(&[], at(30, 11, 0)), None);
    }
}
