//! Numbers: which ones Redshift can hold, how floats are classified, and
//! decimal integers written without `core::fmt`.
//!
//! Floats reach the event as the shortest text that reads back as the same
//! double (`zmij`, exactly what serde_json writes for an `f64`); the few
//! values SUPER cannot take (NaN, the infinities, negative zero, magnitudes
//! outside 1E-307..1E+308) are strings of PostgreSQL's text instead.

use super::Conversion;

/// Whether Redshift can hold the JSON number `lexeme` exactly in SUPER,
/// under either reading of its documentation: as a DECIMAL (at most 38
/// digits, scale at most 37, r_Numeric_types201) or as a DOUBLE PRECISION
/// that prints back the same digits (at most 15 significant digits, which
/// every double keeps, and within 1E-307..1E+308). Zero always fits.
pub fn redshift_holds_number(lexeme: &str) -> bool {
    let unsigned = lexeme.strip_prefix('-').unwrap_or(lexeme);
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], &unsigned[at + 1..]),
        None => (unsigned, "0"),
    };
    let Ok(exponent) = exponent.parse::<i64>() else {
        return false;
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all = int.bytes().chain(frac.bytes());
    let leading = all.clone().take_while(|&b| b == b'0').count();
    let total = int.len() + frac.len();
    if leading == total {
        return true;
    }
    let trailing = frac
        .bytes()
        .rev()
        .chain(int.bytes().rev())
        .take_while(|&b| b == b'0')
        .count();
    let digits = (total - leading - trailing) as i64;
    // value = digits (an integer) x 10^power
    let power = exponent.saturating_sub(frac.len() as i64) + trailing as i64;
    let scale = (-power).max(0);
    let int_digits = (digits + power).max(0);
    let as_decimal = scale <= 37 && int_digits.saturating_add(scale) <= 38;
    let magnitude = digits.saturating_add(power) - 1;
    let as_double = digits <= 15
        && (-307..=308).contains(&magnitude)
        && (magnitude < 308 || lexeme.parse::<f64>().is_ok_and(|f| f.abs() <= 1e308));
    as_decimal || as_double
}

/// How a float's text output reaches the event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Float {
    /// A JSON number (written by [`push_f64`]).
    Number(f64),
    /// A string of the text, as documented (NaN, infinities, `-0`, and
    /// anything that does not parse).
    Text,
    /// A string of the text, a documented conversion: outside Redshift's
    /// DOUBLE range (1E-307..1E+308 in magnitude: subnormals).
    Converted(Conversion),
}

/// Floats are numbers; NaN, the infinities and negative zero (whose sign a
/// JSON number may lose in SUPER) are strings, and so are finite values
/// outside Redshift's DOUBLE range (r_Numeric_types201).
pub fn classify_float(text: &str) -> Float {
    if matches!(text, "NaN" | "Infinity" | "-Infinity" | "-0") {
        return Float::Text;
    }
    let Some(float) = text.parse::<f64>().ok().filter(|f| f.is_finite()) else {
        return Float::Text;
    };
    let magnitude = float.abs();
    if magnitude != 0.0 && !(1e-307..=1e308).contains(&magnitude) {
        return Float::Converted(Conversion::NumberAsString);
    }
    Float::Number(float)
}

/// Append a finite `f64` as serde_json writes it (shortest round trip).
pub fn push_f64(out: &mut Vec<u8>, float: f64) {
    out.extend_from_slice(zmij::Buffer::new().format_finite(float).as_bytes());
}

/// Append an integer in decimal, without `core::fmt`.
pub fn push_i64(out: &mut Vec<u8>, i: i64) {
    if i < 0 {
        out.push(b'-');
    }
    push_u64(out, i.unsigned_abs());
}

/// Append an unsigned integer in decimal, without `core::fmt`, two digits
/// at a time.
pub fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
        2021222324252627282930313233343536373839\
        4041424344454647484950515253545556575859\
        6061626364656667686970717273747576777879\
        8081828384858687888990919293949596979899";
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    while n >= 100 {
        let pair = (n % 100) as usize * 2;
        n /= 100;
        at -= 2;
        buf[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if n >= 10 {
        let pair = n as usize * 2;
        at -= 2;
        buf[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else {
        at -= 1;
        buf[at] = b'0' + n as u8;
    }
    out.extend_from_slice(&buf[at..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redshift_number_limits() {
        let holds = [
            "0",
            "-0.0",
            "99999999999999999999999999999999999999", // 38 nines
            "0.1234567890123456789012345678901234567", // scale 37
            "1e308",
            "-1.23456789012345e-307",
            "123e35",
            "1.000000000000000000000000000000000000000000",
        ];
        for text in holds {
            assert!(redshift_holds_number(text), "{text} fits");
        }
        let unheld = [
            "999999999999999999999999999999999999999",  // 39 nines
            "0.12345678901234567890123456789012345678", // scale 38
            "1e309",
            "1e-308",
            "1.2345678901234567e300",
            "1e99999999999999999999",
        ];
        for text in unheld {
            assert!(!redshift_holds_number(text), "{text} does not fit");
        }
    }

    #[test]
    fn integers_are_written_in_decimal() {
        for i in [
            0,
            7,
            10,
            99,
            100,
            101,
            -1,
            42,
            i64::MIN,
            i64::MAX,
            -1_000_000,
            123_456_789,
        ] {
            let mut out = Vec::new();
            push_i64(&mut out, i);
            assert_eq!(out, i.to_string().into_bytes());
        }
        let mut out = Vec::new();
        push_u64(&mut out, u64::MAX);
        assert_eq!(out, u64::MAX.to_string().into_bytes());
    }
}
