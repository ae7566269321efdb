//! Unix time and the two text forms latchkey writes: the HTTP `Date` (RFC 9110 §5.6.7,
//! IMF-fixdate) and RFC 3339 for logs.
//!
//! Every expiry decision takes the time as a parameter, read once per request from [`now`].
//! The other readers of the clock decide no expiry: the millisecond prefix of a grant id
//! (`oauth::grants::tokens`) and the monotonic timers of the connection layer, the rate limiter
//! and the maintenance thread.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch. Every expiry decision in latchkey takes this value as a
/// parameter, so protocol code can be tested with a fixed time.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// (year, month 1-12, day 1-31) of a count of days since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    (y, m as u32, d as u32)
}

fn split(unix: i64) -> (i64, u32, u32, i64, i64, i64, i64) {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let weekday = (days + 4).rem_euclid(7); // 1970-01-01 was a Thursday
    (y, m, d, secs / 3600, secs / 60 % 60, secs % 60, weekday)
}

/// `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn http_date(unix: i64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, m, d, hh, mm, ss, wd) = split(unix);
    let day = DAYS.get(wd as usize).copied().unwrap_or("Thu");
    let month = MONTHS
        .get((m as usize).saturating_sub(1))
        .copied()
        .unwrap_or("Jan");
    format!("{day}, {d:02} {month} {y:04} {hh:02}:{mm:02}:{ss:02} GMT")
}

/// `1994-11-06T08:49:37Z`.
pub fn rfc3339(unix: i64) -> String {
    let (y, m, d, hh, mm, ss, _) = split(unix);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
}

/// Reads a duration written with its unit: `90s`, `15m` (or `15min`), `12h`, `30d`, `2w`, in
/// seconds. A bare number is refused (`90` is 90 seconds to one reader and 90 days to
/// another), and so is an unknown unit.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 90s, 15m, 12h or 30d"))?;
    let mult = match unit {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        "" => return Err(format!("{s:?} has no unit: write {s}s, {s}m, {s}h or {s}d")),
        _ => {
            return Err(format!(
                "{s:?}: unknown unit {unit:?} (use s, m, h, d or w)"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc9110_example() {
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(rfc3339(784_111_777), "1994-11-06T08:49:37Z");
    }

    #[test]
    fn formats_epoch_and_leap_day() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
