//! Comparing sample outputs in the docs with what a program prints: the
//! numbers of a sample (timings, ports, pids, versions, counts) differ from
//! run to run, its words must not.

/// `line` with every run of digits (with `.` inside, as in `0.3` or
/// `15.20`) replaced by `N`.
pub fn normalise_digits(line: &str) -> String {
    let mut out = String::new();
    let mut in_number = false;
    for c in line.chars() {
        if c.is_ascii_digit() || (in_number && c == '.') {
            if !in_number {
                out.push('N');
                in_number = true;
            }
        } else {
            in_number = false;
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_go_words_stay() {
        assert_eq!(
            normalise_digits("[ ok ] tcp 127.0.0.1:55432 accepts connections (0.3 ms)"),
            "[ ok ] tcp N:N accepts connections (N ms)"
        );
        assert_eq!(
            normalise_digits("PostgreSQL 15.20, role master."),
            "PostgreSQL N, role master."
        );
    }
}
