//! Results on stdout: JSON, aligned tables, and the rule that a closed pipe is not an error.
//!
//! Everything a command prints as its result goes through [`print`], which writes the whole
//! text at once and turns a broken pipe (`notar … | head`) into [`Error::BrokenPipe`], a
//! quiet exit 0. Diagnostics never come here: they go to stderr.

use std::io::{self, Write};

use serde::Serialize;

use crate::Error;

/// Writes `text` to stdout and flushes.
pub fn print(text: &str) -> Result<(), Error> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| {
            if e.kind() == io::ErrorKind::BrokenPipe {
                Error::BrokenPipe
            } else {
                Error::Output(e)
            }
        })
}

/// JSON with a 4-space indent, as Docker prints `trust inspect`, and a final newline.
pub fn json_pretty<T: Serialize>(value: &T) -> String {
    let mut buf = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, formatter);
    // Serialising plain structs of strings and vectors into memory cannot fail.
    let _ = value.serialize(&mut ser);
    buf.push(b'\n');
    String::from_utf8(buf).unwrap_or_default()
}

/// One JSON document per line, for `--json` results of the other commands.
pub fn json_line<T: Serialize>(value: &T) -> String {
    let mut text = serde_json::to_string(value).unwrap_or_default();
    text.push('\n');
    text
}

/// Left-aligned columns as Go's `tabwriter` lays out Docker's tables (minimum cell width
/// 10, padding 3, the last column not padded).
pub fn table(rows: &[Vec<String>]) -> String {
    const MIN_WIDTH: usize = 10;
    const PADDING: usize = 3;
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; columns];
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(columns.saturating_sub(1)) {
            widths[i] = widths[i].max((cell.chars().count() + PADDING).max(MIN_WIDTH));
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < row.len() {
                let pad = widths[i].saturating_sub(cell.chars().count());
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

pub use notar_tuf::view::natural_cmp;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_like_docker() {
        let rows = vec![
            vec!["SIGNED TAG".into(), "DIGEST".into(), "SIGNERS".into()],
            vec!["tag1".into(), "deadbeef".into(), "alice".into()],
            vec!["tag2".into(), "aaaaaaaa".into(), "alice, bob".into()],
            vec!["tag3".into(), "bbbbbbbb".into(), String::new()],
        ];
        // The expected text is Docker's own formatter test.
        assert_eq!(
            table(&rows),
            "SIGNED TAG   DIGEST     SIGNERS\n\
             tag1         deadbeef   alice\n\
             tag2         aaaaaaaa   alice, bob\n\
             tag3         bbbbbbbb   \n"
        );
    }

    #[test]
    fn json_is_indented_with_four_spaces() {
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Signer {
            name: &'static str,
            keys: Vec<String>,
        }
        let value = vec![Signer {
            name: "x",
            keys: Vec::new(),
        }];
        assert_eq!(
            json_pretty(&value),
            "[\n    {\n        \"Name\": \"x\",\n        \"Keys\": []\n    }\n]\n"
        );
        assert_eq!(json_pretty(&Vec::<u8>::new()), "[]\n");
    }
}
