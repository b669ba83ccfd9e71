//! Argument parsing shared by the keyword handlers: numbers, decimal seconds, addresses.

use std::net::IpAddr;
use std::time::Duration;

/// Parses an unsigned integer in `min..=max` (decimal digits only, as keepalived's strtoul checks).
pub(crate) fn unsigned(s: &str, min: u64, max: u64) -> Result<u64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{s}' is not an unsigned integer"));
    }
    match s.parse::<u64>() {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(format!("'{s}' must be between {min} and {max}")),
    }
}

/// Parses a signed integer in `min..=max`.
pub(crate) fn signed(s: &str, min: i64, max: i64) -> Result<i64, String> {
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{s}' is not an integer"));
    }
    match s.parse::<i64>() {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(format!("'{s}' must be between {min} and {max}")),
    }
}

/// Parses decimal seconds with at most `digits` places (keepalived's read_decimal_unsigned),
/// returning microseconds; the result must lie in `min_us..=max_us`.
pub(crate) fn seconds(s: &str, digits: u32, min_us: u64, max_us: u64) -> Result<Duration, String> {
    let bad = || format!("'{s}' is not a number of seconds");
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    if frac.len() > digits as usize {
        return Err(format!("'{s}' has more than {digits} decimal places"));
    }
    let whole: u64 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| bad())?
    };
    let mut us = whole.checked_mul(1_000_000).ok_or_else(bad)?;
    if !frac.is_empty() {
        let scale = 10u64.pow(6 - frac.len() as u32);
        let f: u64 = frac.parse().map_err(|_| bad())?;
        us += f * scale;
    }
    if us < min_us || us > max_us {
        return Err(format!(
            "'{s}' must be between {} and {} seconds",
            fmt_us(min_us),
            fmt_us(max_us)
        ));
    }
    Ok(Duration::from_micros(us))
}

fn fmt_us(us: u64) -> String {
    let d = Duration::from_micros(us);
    format!("{}", d.as_secs_f64())
}

/// An address with an optional `/prefix`; the prefix defaults to the full length.
pub(crate) fn addr_prefix(s: &str) -> Result<(IpAddr, u8), String> {
    let (a, p) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let addr: IpAddr = a
        .parse()
        .map_err(|_| format!("'{s}' is not an IP address"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match p {
        None => max,
        Some(p) => unsigned(p, 0, u64::from(max))
            .map_err(|_| format!("'{s}': prefix length must be between 0 and {max}"))?
            as u8,
    };
    Ok((addr, prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_seconds() {
        assert_eq!(
            seconds("0.1", 6, 1, 255_000_000),
            Ok(Duration::from_millis(100))
        );
        assert_eq!(seconds("1", 6, 1, 255_000_000), Ok(Duration::from_secs(1)));
        assert_eq!(
            seconds(".25", 6, 1, 255_000_000),
            Ok(Duration::from_millis(250))
        );
        assert!(seconds("0", 6, 10_000, 255_000_000).is_err());
        assert!(seconds("256", 6, 10_000, 255_000_000).is_err());
        assert!(seconds("1.0001", 3, 0, 1_000_000_000).is_err());
        assert!(seconds("1s", 6, 0, 1_000_000_000).is_err());
        assert!(seconds("-1", 6, 0, 1_000_000_000).is_err());
    }

    #[test]
    fn integers_and_addresses() {
        assert_eq!(unsigned("51", 1, 255), Ok(51));
        assert!(unsigned("0", 1, 255).is_err());
        assert!(unsigned("-1", 1, 255).is_err());
        assert_eq!(signed("-20", -253, 253), Ok(-20));
        assert!(signed("254", -253, 253).is_err());
        assert_eq!(addr_prefix("10.0.0.1/24").map(|v| v.1), Ok(24));
        assert_eq!(addr_prefix("fe80::1").map(|v| v.1), Ok(128));
        assert!(addr_prefix("10.0.0.300").is_err());
        assert!(addr_prefix("10.0.0.1/33").is_err());
    }
}
