//! The PostgreSQL log sequence number (LSN) as kinesync uses it.
//!
//! An LSN is a byte position in the write-ahead log. Postgres prints it as
//! `X/Y` (two hex halves of a 64-bit number); our events carry it as a decimal
//! (`source.sequence`) and as a JSON number (`source.lsn`, `source.commit_lsn`),
//! so the merge can order by it without parsing hex. This module owns those
//! three spellings and the conversion to and from `pgwire_replication::Lsn`.

use std::fmt;
use std::str::FromStr;

/// A WAL position. Ordered like the WAL: a larger LSN is later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

/// Why a string is not an `X/Y` LSN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an LSN (expected X/Y with hexadecimal halves, e.g. 16/B374D848)")]
pub struct ParseLsnError(pub String);

impl Lsn {
    pub const ZERO: Lsn = Lsn(0);

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for Lsn {
    /// Postgres's own `X/Y` spelling (upper-case hex, no leading zeros).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl FromStr for Lsn {
    type Err = ParseLsnError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseLsnError(s.to_owned());
        let (hi, lo) = s.trim().split_once('/').ok_or_else(bad)?;
        if hi.is_empty() || lo.is_empty() || hi.len() > 8 || lo.len() > 8 {
            return Err(bad());
        }
        let hi = u64::from_str_radix(hi, 16).map_err(|_| bad())?;
        let lo = u64::from_str_radix(lo, 16).map_err(|_| bad())?;
        Ok(Lsn((hi << 32) | lo))
    }
}

impl From<pgwire_replication::Lsn> for Lsn {
    fn from(value: pgwire_replication::Lsn) -> Self {
        Lsn(value.as_u64())
    }
}

impl From<Lsn> for pgwire_replication::Lsn {
    fn from(value: Lsn) -> Self {
        pgwire_replication::Lsn::from_u64(value.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_postgres_spelling() {
        let lsn: Lsn = "16/B374D848".parse().unwrap();
        assert_eq!(lsn.0, (0x16 << 32) | 0xB374_D848);
        assert_eq!(lsn.to_string(), "16/B374D848");
        assert_eq!("0/0".parse::<Lsn>().unwrap(), Lsn::ZERO);
        assert_eq!("0/1a".parse::<Lsn>().unwrap(), Lsn(26));
    }

    #[test]
    fn rejects_malformed() {
        for bad in ["", "16", "/1", "1/", "x/1", "1/2/3", "123456789/0"] {
            assert!(bad.parse::<Lsn>().is_err(), "{bad}");
        }
    }

    #[test]
    fn round_trips_with_pgwire() {
        let ours = Lsn(0xFFFF_FFFF_0000_0001);
        let theirs: pgwire_replication::Lsn = ours.into();
        assert_eq!(Lsn::from(theirs), ours);
        assert_eq!(theirs.to_string(), ours.to_string());
    }
}
