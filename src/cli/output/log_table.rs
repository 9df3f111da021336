//! `assetfs log`: an asset's versions as a table, newest first, with the
//! metrics as columns.

use std::collections::BTreeSet;

use serde_json::Value;

/// The table `log` prints for these sidecars (newest first): VERSION,
/// CREATED, AUTHOR, ALIASES, one column per metric any of the versions has
/// (sorted by name; `-` where a version lacks it), and MESSAGE last.
pub fn log_table(rows: &[Value]) -> String {
    let metrics: BTreeSet<&str> = rows
        .iter()
        .filter_map(|r| r["metrics"].as_object())
        .flat_map(|m| m.keys().map(String::as_str))
        .collect();
    let mut header: Vec<String> = ["VERSION", "CREATED", "AUTHOR", "ALIASES"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    header.extend(metrics.iter().map(|m| m.to_string()));
    header.push("MESSAGE".into());
    let dash = |s: String| if s.is_empty() { "-".to_string() } else { s };
    let mut table = vec![header];
    for r in rows {
        let aliases: Vec<&str> = r["aliases"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        // A staging commit that another node's commit overtook: its base
        // (where it started) differs from its parent (what it follows).
        let version = match (r["base"].as_u64(), r["parent"].as_u64()) {
            (Some(b), p) if Some(b) != p => format!("@{} (base @{b})", r["version"]),
            _ => format!("@{}", r["version"]),
        };
        let mut line = vec![
            version,
            dash(r["created"].as_str().unwrap_or_default().to_string()),
            dash(r["author"].as_str().unwrap_or_default().to_string()),
            dash(aliases.join(",")),
        ];
        for m in &metrics {
            line.push(match r["metrics"].get(*m) {
                Some(v) if !v.is_null() => v.to_string(),
                _ => "-".into(),
            });
        }
        let mut message = r["message"].as_str().unwrap_or_default().to_string();
        // `log --all`: a deleted version says by whom, when and why, first.
        if let Some(d) = r.get("deleted").filter(|d| d.is_object()) {
            line[0].push_str(" deleted");
            let why = d["message"].as_str().unwrap_or_default();
            message = format!(
                "[deleted by {} at {}{}] {message}",
                d["by"].as_str().unwrap_or("?"),
                d["at"].as_str().unwrap_or("?"),
                if why.is_empty() {
                    String::new()
                } else {
                    format!(": {why}")
                }
            );
        }
        line.push(message.split_whitespace().collect::<Vec<_>>().join(" "));
        table.push(line);
    }
    render(&table)
}

/// Left-aligned columns two spaces apart; the last column is not padded.
fn render(table: &[Vec<String>]) -> String {
    let cols = table.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            table
                .iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in table {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&" ".repeat(widths[c] - cell.chars().count() + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metrics_become_columns() {
        let rows = vec![
            json!({"version": 2, "created": "2026-01-02T00:00:00Z", "author": "ana",
                   "aliases": ["latest", "production"], "metrics": {"auc": 0.81, "loss": 0.2},
                   "message": "retrained\non more data"}),
            json!({"version": 1, "created": "2026-01-01T00:00:00Z", "author": "bo",
                   "aliases": [], "metrics": {"auc": 0.75}, "message": ""}),
        ];
        let t = log_table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines,
            [
                "VERSION  CREATED               AUTHOR  ALIASES            auc   loss  MESSAGE",
                "@2       2026-01-02T00:00:00Z  ana     latest,production  0.81  0.2   retrained on more data",
                "@1       2026-01-01T00:00:00Z  bo      -                  0.75  -",
            ]
        );
        let deleted = vec![
            json!({"version": 3, "created": "2026-01-03T00:00:00Z", "author": "ana",
            "aliases": [], "message": "bad run",
            "deleted": {"by": "bo", "at": "2026-01-04T00:00:00Z", "message": "leaked data"}}),
        ];
        assert_eq!(
            log_table(&deleted).lines().nth(1).unwrap(),
            "@3 deleted  2026-01-03T00:00:00Z  ana     -        [deleted by bo at 2026-01-04T00:00:00Z: leaked data] bad run"
        );
    }
}
