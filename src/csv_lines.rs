//! Line numbers of CSV records, for errors that name `file:line` (polars reports
//! row indices, and a quoted field may span lines).

/// Each CSV record (header first) as its 1-based starting line and whether it is
/// blank. Like polars, every newline outside quotes ends a record, blank lines
/// included; a last record without a newline counts when not empty.
pub fn csv_records(bytes: &[u8]) -> Vec<(usize, bool)> {
    let (mut records, mut line, mut start, mut in_quotes, mut blank) = (Vec::new(), 1, 1, false, true);
    for &b in bytes {
        if b == b'"' {
            in_quotes = !in_quotes;
        }
        if b == b'\n' {
            line += 1;
            if !in_quotes {
                records.push((start, blank));
                (start, blank) = (line, true);
            }
        } else if !b.is_ascii_whitespace() {
            blank = false;
        }
    }
    if !blank {
        records.push((start, blank));
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_newlines_stay_in_their_record() {
        let csv = b"a,b\n1,\"x\ny\"\n\n2,z";
        assert_eq!(csv_records(csv), vec![(1, false), (2, false), (4, true), (5, false)]);
    }
}
