//! CSV copies of the benches' tables (`--csv-dir`), which scripts/bench-* chart with
//! benches/python/plot_bench.py.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};

/// One table's CSV file, or nothing when no `--csv-dir` was given.
pub struct CsvTable {
    out: Option<(PathBuf, File)>,
    columns: usize,
}

impl CsvTable {
    /// A table that drops its rows.
    pub fn none() -> CsvTable {
        CsvTable {
            out: None,
            columns: 0,
        }
    }

    /// `DIR/NAME` when `dir` is given, else [`CsvTable::none`].
    pub fn in_dir(dir: Option<&Path>, name: &str, header: &[&str]) -> Result<CsvTable> {
        match dir {
            Some(dir) => CsvTable::append(&dir.join(name), header),
            None => Ok(CsvTable::none()),
        }
    }

    /// Appends rows to `path`, so that several runs of a bench (the scripts run some
    /// twice) fill one table; writes `header` first when the file is new or empty. A file
    /// with another header is an error: its rows would not line up with ours.
    pub fn append(path: &Path, header: &[&str]) -> Result<CsvTable> {
        let header_line = line(header.iter().copied());
        let existing = match File::open(path) {
            Ok(file) => BufReader::new(file)
                .lines()
                .next()
                .transpose()
                .with_context(|| format!("reading {}", path.display()))?,
            Err(_) => None,
        };
        if let Some(first) = &existing {
            ensure!(
                format!("{first}\n") == header_line,
                "{} has other columns ({first}); remove it or pick another --csv-dir",
                path.display()
            );
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        if existing.is_none() {
            file.write_all(header_line.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(CsvTable {
            out: Some((path.to_path_buf(), file)),
            columns: header.len(),
        })
    }

    /// Writes one row (written at once: a bench that fails later keeps the rows so far).
    pub fn row(&mut self, cells: &[String]) -> Result<()> {
        let Some((path, file)) = &mut self.out else {
            return Ok(());
        };
        ensure!(
            cells.len() == self.columns,
            "a row of {} cells for the {} columns of {}",
            cells.len(),
            self.columns,
            path.display()
        );
        file.write_all(line(cells.iter().map(String::as_str)).as_bytes())
            .with_context(|| format!("writing {}", path.display()))
    }
}

/// One CSV line: cells with a comma, quote or line break are quoted (RFC 4180).
fn line<'a>(cells: impl Iterator<Item = &'a str>) -> String {
    let quoted: Vec<String> = cells
        .map(|cell| {
            if cell.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", cell.replace('"', "\"\""))
            } else {
                cell.to_string()
            }
        })
        .collect();
    quoted.join(",") + "\n"
}

/// A number for a CSV cell: fixed decimals, and empty for NaN (no measurement).
pub fn num(value: f64, decimals: usize) -> String {
    if value.is_finite() {
        format!("{value:.decimals$}")
    } else {
        String::new()
    }
}
