//! Exact integer views of resource quantities, as the scheduler and the kubelet compare them: `MilliValue()`
//! and `Value()` of upstream's `resource.Quantity`, both rounded up. `validation::parse_quantity` gives an
//! `f64`, which is fine for validation but not for sums ("0.1" × 1000 is not 100 in floating point).

/// `s` scaled by `10^exp10` and rounded up to an integer: `scaled("100m", 3) == Some(100)` (milli-units),
/// `scaled("1Gi", 0) == Some(1073741824)`, `scaled("0.5", 0) == Some(1)`. Upstream rounds away from zero
/// when a value does not fit the scale (`ScaledValue`), which for the non-negative quantities of requests is
/// rounding up. Values beyond `i64` saturate. `None` when `s` is not a quantity.
pub fn scaled(s: &str, exp10: i32) -> Option<i64> {
    let s = s.trim();
    let (negative, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let split = body.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(body.len());
    let (num, suffix) = body.split_at(split);
    if num.is_empty() || num == "." || num.matches('.').count() > 1 {
        return None;
    }
    // The number as an integer mantissa and a power of ten: "1.25" = 125 × 10^-2.
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    let mut exp = -(frac.len() as i32);
    let digits = format!("{int}{frac}");
    let digits = digits.trim_start_matches('0');
    // More than 38 significant digits cannot be held exactly; no real quantity has them.
    if digits.len() > 38 {
        return None;
    }
    let mantissa: u128 = if digits.is_empty() { 0 } else { digits.parse().ok()? };
    let mut twos = 0u32;
    match suffix {
        "" => {}
        "n" => exp -= 9,
        "u" => exp -= 6,
        "m" => exp -= 3,
        "k" => exp += 3,
        "M" => exp += 6,
        "G" => exp += 9,
        "T" => exp += 12,
        "P" => exp += 15,
        "E" => exp += 18,
        "Ki" => twos = 10,
        "Mi" => twos = 20,
        "Gi" => twos = 30,
        "Ti" => twos = 40,
        "Pi" => twos = 50,
        "Ei" => twos = 60,
        e if e.starts_with(['e', 'E']) => exp += e[1..].parse::<i32>().ok()?,
        _ => return None,
    }
    exp += exp10;
    if mantissa == 0 {
        return Some(0);
    }
    let magnitude = scale_up(mantissa, exp, twos);
    let v = i64::try_from(magnitude).unwrap_or(i64::MAX);
    Some(if negative { -v } else { v })
}

/// ceil(mantissa × 10^exp × 2^twos), saturating at `u128::MAX`.
fn scale_up(mantissa: u128, exp: i32, twos: u32) -> u128 {
    let mut num = mantissa.saturating_mul(1u128 << twos);
    if exp >= 0 {
        for _ in 0..exp {
            num = match num.checked_mul(10) {
                Some(n) => n,
                None => return u128::MAX,
            };
        }
        num
    } else {
        // Dividing by more than 10^38 leaves a fraction of one: ceil gives 1 for any positive value.
        if -exp > 38 {
            return 1;
        }
        let den = 10u128.pow((-exp) as u32);
        num.div_ceil(den)
    }
}

#[cfg(test)]
mod tests {
    use super::scaled;

    #[test]
    fn scaled_values_round_up() {
        let cases: &[(&str, i32, Option<i64>)] = &[
            ("100m", 3, Some(100)),
            ("0.1", 3, Some(100)),
            ("1", 3, Some(1000)),
            ("2.5", 3, Some(2500)),
            ("1u", 3, Some(1)), // rounded up, as MilliValue does
            ("1Gi", 0, Some(1 << 30)),
            ("128Mi", 0, Some(128 << 20)),
            ("1.5Gi", 0, Some(3 << 29)),
            ("500M", 0, Some(500_000_000)),
            ("1e3", 0, Some(1000)),
            ("1E-3", 3, Some(1)),
            ("0.5", 0, Some(1)),
            ("0", 3, Some(0)),
            ("0.000", 0, Some(0)),
            ("+1k", 0, Some(1000)),
            ("-1", 3, Some(-1000)),
            ("1Ei", 0, Some(1 << 60)),
            ("16Ei", 0, Some(i64::MAX)), // saturates
            ("123456789012345678901234567890", 0, Some(i64::MAX)),
            ("1Gb", 0, None),
            ("", 0, None),
            (".", 0, None),
            ("1..2", 0, None),
            ("abc", 0, None),
            ("--1", 0, None),
        ];
        for (q, e, want) in cases {
            assert_eq!(scaled(q, *e), *want, "{q} at 10^{e}");
        }
    }
}
