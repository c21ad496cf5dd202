//! The order of Kinesis sequence numbers, pure.
//!
//! A sequence number is a decimal string of up to 129 digits (KDS-12), so it is kept as text
//! and compared as a big integer: by length once leading zeros are set aside, then digit by
//! digit. `"9" < "10"`, and `"007" == "7"`. Neither a `u64` nor a plain string comparison
//! would do. No parsing, no allocation.
//!
//! An extended sequence number adds the sub-sequence of a user record inside a KPL aggregate
//! (KPL-04, KPL-05): ordered by sequence number, then by sub-sequence. A plain record is an
//! aggregate of one with sub-sequence 0 (KPL-04), so a missing sub-sequence counts as 0: a
//! checkpoint at (S, none) and one at (S, 0) are the same place. The iterator sentinels
//! (`TRIM_HORIZON`, `LATEST`, `AT_TIMESTAMP`, `SHARD_END`) are not sequence numbers; the
//! code that holds them orders them itself.
//!
//! Input is expected to be decimal digits, as Kinesis gives them. Other text still gets a
//! consistent total order by the same rule (length, then bytes), never a panic.

use std::cmp::Ordering;

/// Compares two decimal sequence numbers as unbounded integers (KDS-12): `"9" < "10"`,
/// leading zeros do not count.
pub fn compare_sequence(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.as_bytes().cmp(b.as_bytes()))
}

/// Compares two extended sequence numbers, (sequence number, sub-sequence), as KCL does
/// (KPL-05): by sequence number, then by sub-sequence, where `None` (a plain record) counts
/// as sub-sequence 0 (KPL-04).
pub fn compare_extended(a: (&str, Option<u64>), b: (&str, Option<u64>)) -> Ordering {
    compare_sequence(a.0, b.0).then_with(|| a.1.unwrap_or(0).cmp(&b.1.unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::{Equal, Greater, Less};

    #[test]
    fn kds_12_numeric_not_lexicographic() {
        assert_eq!(compare_sequence("9", "10"), Less);
        assert_eq!(compare_sequence("10", "9"), Greater);
        assert_eq!(compare_sequence("100", "99"), Greater);
        assert_eq!(compare_sequence("0", "0"), Equal);
        assert_eq!(compare_sequence("0", "1"), Less);
        // Real sequence numbers from the spec's vectors (56 digits, beyond u128).
        assert_eq!(
            compare_sequence(
                "49581544954143914480256700934210366840104395343224897586",
                "49581544954143914480259384464784359468274789083712061490"
            ),
            Less
        );
    }

    #[test]
    fn kds_12_leading_zeros_do_not_matter() {
        assert_eq!(compare_sequence("007", "7"), Equal);
        assert_eq!(compare_sequence("0009", "10"), Less);
        assert_eq!(compare_sequence("10", "0000000009"), Greater);
        assert_eq!(compare_sequence("000", "0"), Equal);
        assert_eq!(compare_sequence("", "0"), Equal);
    }

    #[test]
    fn kds_12_129_digit_numbers() {
        let max = "9".repeat(129);
        let below = format!("{}8", "9".repeat(128));
        let one_then_zeros = format!("1{}", "0".repeat(128));
        let shorter = "9".repeat(128);
        assert_eq!(compare_sequence(&max, &below), Greater);
        assert_eq!(compare_sequence(&below, &max), Less);
        assert_eq!(compare_sequence(&max, &max.clone()), Equal);
        assert_eq!(compare_sequence(&shorter, &one_then_zeros), Less);
        assert_eq!(compare_sequence(&format!("000{max}"), &max), Equal);
        // Differs only in the last of 129 digits, and only in the first.
        let a = format!("1{}1", "0".repeat(127));
        let b = format!("1{}2", "0".repeat(127));
        assert_eq!(compare_sequence(&a, &b), Less);
        let c = format!("2{}1", "0".repeat(127));
        assert_eq!(compare_sequence(&c, &b), Greater);
    }

    #[test]
    fn comparison_is_a_total_order_that_sorts_numerically() {
        let mut numbers = vec!["10", "9", "0010", "1", "0", "100", "99", "000"];
        numbers.sort_by(|a, b| compare_sequence(a, b));
        assert_eq!(numbers, ["0", "000", "1", "9", "10", "0010", "99", "100"]);
    }

    #[test]
    fn kpl_05_by_sequence_then_sub_sequence() {
        assert_eq!(compare_extended(("9", Some(5)), ("10", Some(0))), Less);
        assert_eq!(compare_extended(("10", Some(0)), ("10", Some(1))), Less);
        assert_eq!(compare_extended(("10", Some(3)), ("10", Some(1))), Greater);
        assert_eq!(compare_extended(("010", Some(2)), ("10", Some(2))), Equal);
        assert_eq!(compare_extended(("11", None), ("10", Some(u64::MAX))), Greater);
    }

    #[test]
    fn kpl_04_a_plain_record_is_sub_sequence_0() {
        assert_eq!(compare_extended(("10", None), ("10", Some(0))), Equal);
        assert_eq!(compare_extended(("10", None), ("10", Some(1))), Less);
        assert_eq!(compare_extended(("10", Some(1)), ("10", None)), Greater);
        assert_eq!(compare_extended(("10", None), ("10", None)), Equal);
    }
}
