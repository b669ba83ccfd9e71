//! Numbers, times and sizes as HAProxy writes them.
//!
//! Times: digits followed by an optional unit `us`, `ms`, `s`, `m`, `h` or `d`;
//! no unit means milliseconds (HAProxy's default for every timeout/interval).
//! Sizes: digits followed by an optional `k`, `m` or `g` (powers of 1024).
//! Unlike C's `atoi()`, trailing garbage is rejected instead of silently dropped.

use std::time::Duration;

/// HAProxy stores timers as signed 32-bit milliseconds: larger values wrap.
const MAX_TIMER_MS: u64 = 2_147_483_647;

/// Splits `text` into its leading ASCII digits and the rest.
fn split_digits(text: &str) -> (&str, &str) {
    let end = text
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(text.len());
    text.split_at(end)
}

/// Parses a time value (`10s`, `5000`, `1m`, `250ms`, `100us`).
pub(crate) fn parse_time(text: &str) -> Result<Duration, String> {
    let (digits, unit) = split_digits(text);
    if digits.is_empty() {
        return Err(match text.chars().next() {
            None => "empty time value".to_string(),
            Some(c) => format!("unexpected character '{c}' in time value '{text}'"),
        });
    }
    let us_per_unit: u64 = match unit {
        "" | "ms" => 1_000,
        "us" => 1,
        "s" => 1_000_000,
        "m" => 60_000_000,
        "h" => 3_600_000_000,
        "d" => 86_400_000_000,
        _ => {
            return Err(format!(
                "invalid unit '{unit}' in time value '{text}' (expected us, ms, s, m, h or d)"
            ))
        }
    };
    let overflow =
        || format!("timer overflow in '{text}' (maximum value is 2147483647 ms or ~24.8 days)");
    let value: u64 = digits.parse().map_err(|_| overflow())?;
    let us = value.checked_mul(us_per_unit).ok_or_else(overflow)?;
    if us > MAX_TIMER_MS * 1_000 {
        return Err(overflow());
    }
    if us > 0 && us < 1_000 {
        return Err(format!(
            "timer underflow in '{text}' (minimum non-null value is 1 ms)"
        ));
    }
    Ok(Duration::from_micros(us))
}

/// Parses a size (`1024`, `16k`, `1m`, `2g`) into bytes.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let (digits, unit) = split_digits(text);
    if digits.is_empty() {
        return Err(format!("invalid size '{text}'"));
    }
    let multiplier: u64 = match unit {
        "" => 1,
        "k" | "K" => 1 << 10,
        "m" | "M" => 1 << 20,
        "g" | "G" => 1 << 30,
        _ => {
            return Err(format!(
                "invalid unit '{unit}' in size '{text}' (expected k, m or g)"
            ))
        }
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|v| v.checked_mul(multiplier))
        .ok_or_else(|| format!("size '{text}' is too large"))
}

/// Parses a plain unsigned decimal integer that must fit in `T`.
pub(crate) fn parse_uint<T: std::str::FromStr>(text: &str) -> Result<T, String> {
    let (digits, rest) = split_digits(text);
    if digits.is_empty() || !rest.is_empty() {
        return Err(format!("'{text}' is not a valid unsigned integer"));
    }
    digits
        .parse::<T>()
        .map_err(|_| format!("'{text}' is out of range"))
}

/// Parses a signed decimal integer (`-1`, `+2`, `3`).
pub(crate) fn parse_int(text: &str) -> Result<i64, String> {
    let (negative, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let magnitude: i64 =
        parse_uint(body).map_err(|_| format!("'{text}' is not a valid integer"))?;
    Ok(if negative { -magnitude } else { magnitude })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_units() {
        assert_eq!(parse_time("5000"), Ok(Duration::from_millis(5000)));
        assert_eq!(parse_time("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_time("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_time("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_time("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_time("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_time("1500us"), Ok(Duration::from_micros(1500)));
        assert_eq!(parse_time("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn time_errors() {
        assert!(parse_time("").is_err());
        assert!(parse_time("s")
            .unwrap_err()
            .contains("unexpected character 's'"));
        assert!(parse_time("10x").unwrap_err().contains("invalid unit 'x'"));
        assert!(parse_time("10sec").is_err());
        assert!(parse_time("-5s").is_err());
        assert!(parse_time("1.5s").is_err());
        assert!(parse_time("25d").unwrap_err().contains("overflow"));
        assert!(parse_time("99999999999999999999999")
            .unwrap_err()
            .contains("overflow"));
        assert!(parse_time("500us").unwrap_err().contains("underflow"));
        // The largest accepted value is exactly HAProxy's limit.
        assert!(parse_time("2147483647").is_ok());
        assert!(parse_time("2147483648").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("16k"), Ok(16 * 1024));
        assert_eq!(parse_size("2M"), Ok(2 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert!(parse_size("k").is_err());
        assert!(parse_size("10kb").is_err());
        assert!(parse_size("99999999999999999999g").is_err());
    }

    #[test]
    fn integers() {
        assert_eq!(parse_uint::<u32>("42"), Ok(42));
        assert!(parse_uint::<u32>("42x").is_err());
        assert!(parse_uint::<u32>("").is_err());
        assert!(parse_uint::<u32>("-1").is_err());
        assert!(parse_uint::<u16>("70000")
            .unwrap_err()
            .contains("out of range"));
        assert_eq!(parse_int("-1"), Ok(-1));
        assert_eq!(parse_int("+3"), Ok(3));
        assert!(parse_int("--1").is_err());
    }
}
