//! Output formats. Tables are for people; JSON (an array of objects) and CSV (a header
//! row, then one row per record, RFC 4180 quoting) are stable for machines: columns are
//! only ever added at the end.

use std::io::Write;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

fn cell(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// Writes `rows` (structs whose fields are the columns) in `format`.
pub fn write_rows<T: Serialize>(
    out: &mut impl Write,
    format: Format,
    columns: &[&str],
    rows: &[T],
) -> anyhow::Result<()> {
    let values: Vec<serde_json::Value> = rows
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()?;
    match format {
        Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&values)?)?,
        Format::Csv => {
            writeln!(out, "{}", columns.join(","))?;
            for v in &values {
                let line: Vec<String> = columns.iter().map(|c| csv_field(&cell(&v[*c]))).collect();
                writeln!(out, "{}", line.join(","))?;
            }
        }
        Format::Table => {
            let grid: Vec<Vec<String>> = values
                .iter()
                .map(|v| columns.iter().map(|c| cell(&v[*c])).collect())
                .collect();
            let widths: Vec<usize> = columns
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    grid.iter()
                        .map(|r| r[i].chars().count())
                        .chain([c.len()])
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            let line = |cells: Vec<String>| {
                cells
                    .iter()
                    .zip(&widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect::<Vec<_>>()
                    .join("  ")
                    .trim_end()
                    .to_owned()
            };
            writeln!(
                out,
                "{}",
                line(columns.iter().map(|c| c.to_uppercase()).collect())
            )?;
            for r in grid {
                writeln!(out, "{}", line(r))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Row {
        a: &'static str,
        b: Option<i64>,
    }

    #[test]
    fn csv_quotes_what_needs_quoting_and_tables_align() {
        let rows = [
            Row {
                a: "x,\"y\"",
                b: Some(1),
            },
            Row {
                a: "plain",
                b: None,
            },
        ];
        let mut csv = Vec::new();
        write_rows(&mut csv, Format::Csv, &["a", "b"], &rows).unwrap();
        assert_eq!(
            String::from_utf8(csv).unwrap(),
            "a,b\n\"x,\"\"y\"\"\",1\nplain,\n"
        );
        let mut table = Vec::new();
        write_rows(&mut table, Format::Table, &["a", "b"], &rows).unwrap();
        assert_eq!(
            String::from_utf8(table).unwrap(),
            "A      B\nx,\"y\"  1\nplain\n"
        );
    }
}
