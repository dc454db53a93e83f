//! Times as operators write them: `2026-11-28T12:00:00Z`, UTC, to the second.
//!
//! The CLI's `--start`/`--end` and the HTTP API's `start`/`end` parse through [`parse_utc`], so a
//! deployment window means the same thing whichever way it was created; [`format_utc`] writes
//! times back the same way.

use lfr_schemas::Timestamp;

/// `YYYY-MM-DDTHH:MM:SSZ` (UTC) to a timestamp.
pub fn parse_utc(s: &str) -> anyhow::Result<Timestamp> {
    let bad = || anyhow::anyhow!("{s:?} is not a UTC time like 2026-11-28T12:00:00Z");
    let b = s.as_bytes();
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'Z'
    {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| {
        let field = &s[r];
        if field.bytes().all(|c| c.is_ascii_digit()) {
            field.parse::<i64>().map_err(|_| bad())
        } else {
            Err(bad())
        }
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return Err(bad());
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let secs = days * 86400 + hh * 3600 + mm * 60 + ss;
    anyhow::ensure!(secs >= 0, "{s} is before 1970");
    Ok(Timestamp(secs as u64 * 1_000_000_000))
}

/// `2026-11-28T12:00:00Z` (the format `--start`/`--end` take).
pub fn format_utc(t: Timestamp) -> String {
    let secs = t.0 / 1_000_000_000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let (y, m, d) = lfr_common::calendar::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::{format_utc, parse_utc};

    #[test]
    fn utc_times_parse_and_nonsense_does_not() {
        assert_eq!(parse_utc("1970-01-01T00:00:00Z").unwrap().0, 0);
        assert_eq!(
            parse_utc("2026-11-28T12:00:00Z").unwrap().0 / 1_000_000_000,
            1_795_867_200
        );
        for bad in [
            "2026-11-28 12:00:00",
            "2026-13-01T00:00:00Z",
            "tomorrow",
            "2026-11-28T12:00:00+01:00",
            "+026-11-28T12:00:00Z",
            "2026-11-28T1-:00:00Z",
        ] {
            assert!(parse_utc(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn times_print_as_they_parse() {
        for s in [
            "1970-01-01T00:00:00Z",
            "2026-11-28T12:00:00Z",
            "2000-02-29T23:59:59Z",
        ] {
            assert_eq!(format_utc(parse_utc(s).unwrap()), s);
        }
    }
}
