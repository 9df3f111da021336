//! Small text formats the commands share.

/// A byte count for people (`1.50 MiB`).
pub fn human_bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

/// The error and its causes on one line, without repeating a cause that a
/// message already quotes.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if !out.contains(&s) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&s);
        }
    }
    out.replace('\n', " ")
}
