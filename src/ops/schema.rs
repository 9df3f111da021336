//! Schema summaries of feature snapshots, computed at commit time from the
//! directory being committed: for Parquet (`.parquet`, `.pq`), CSV/TSV
//! (`.csv`, `.tsv`) and NumPy (`.npy`) files, their columns or dtype, shape
//! and row count. Stored in the sidecar as
//!
//! ```json
//! "schema": {"files": {
//!   "train.parquet": {"format": "parquet", "rows": 1000, "row_groups": 1,
//!                     "columns": [{"name": "id", "dtype": "int64", "nullable": false}]},
//!   "labels.csv":    {"format": "csv", "rows": 1000,
//!                     "columns": [{"name": "label", "dtype": "int64"}]},
//!   "x.npy":         {"format": "npy", "dtype": "float32", "shape": [1000, 16], "rows": 1000}
//! }}
//! ```
//!
//! Parquet is read from its footer only; CSV is read whole (the row count
//! needs it; dtypes are inferred over every row: `int64`, `float64`, `bool`,
//! `string`, or `empty` for a column with no values). A file that cannot be
//! read as its extension says gets `{"format": ..., "error": "..."}`; it never
//! fails the commit. At most [`MAX_FILES`] files are summarised; past that
//! `"truncated": true` is set.

use std::path::Path;

use serde_json::{json, Map, Value};

/// Files summarised per snapshot, so a sidecar stays small.
pub const MAX_FILES: usize = 1000;

/// The format a file name suggests, if it is one we summarise.
pub fn format_of(path: &str) -> Option<&'static str> {
    let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
    match ext.as_str() {
        "parquet" | "pq" => Some("parquet"),
        "csv" => Some("csv"),
        "tsv" => Some("tsv"),
        "npy" => Some("npy"),
        _ => None,
    }
}

#[cfg(test)]
/// Summaries of every supported file under `dir` (symlinks not followed),
/// as the `schema` sidecar section.
pub fn summarise_dir(dir: &Path) -> Value {
    let mut files = Map::new();
    let mut truncated = false;
    for e in walkdir::WalkDir::new(dir)
        .follow_links(false)
        .sort_by_file_name()
        .min_depth(1)
        .into_iter()
        .filter_map(Result::ok)
    {
        if !e.file_type().is_file() {
            continue;
        }
        let Some(rel) = e.path().strip_prefix(dir).ok().and_then(Path::to_str) else {
            continue;
        };
        let Some(format) = format_of(rel) else {
            continue;
        };
        if files.len() == MAX_FILES {
            truncated = true;
            break;
        }
        files.insert(rel.to_string(), summarise_file(e.path(), format));
    }
    let mut out = Map::new();
    out.insert("files".into(), Value::Object(files));
    if truncated {
        out.insert("truncated".into(), true.into());
    }
    Value::Object(out)
}

/// One file's summary; errors are recorded, not raised.
pub fn summarise_file(path: &Path, format: &str) -> Value {
    let r = match format {
        "parquet" => parquet_summary(path),
        "csv" => csv_summary(path, b','),
        "tsv" => csv_summary(path, b'\t'),
        "npy" => npy_summary(path),
        _ => Err(format!("unsupported format {format}")),
    };
    let mut m = Map::new();
    m.insert("format".into(), format.into());
    match r {
        Ok(Value::Object(fields)) => m.extend(fields),
        Ok(_) => unreachable!("summaries are objects"),
        Err(e) => {
            m.insert("error".into(), e.into());
        }
    }
    Value::Object(m)
}

fn npy_summary(path: &Path) -> Result<Value, String> {
    let h = crate::ops::npy::read_header_file(path).map_err(|e| e.to_string())?;
    Ok(json!({
        "dtype": h.dtype_name(),
        "shape": h.shape,
        "rows": h.shape.first().copied().unwrap_or(1),
        "fortran_order": h.fortran_order,
    }))
}

fn parquet_summary(path: &Path) -> Result<Value, String> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let r =
        SerializedFileReader::new(f).map_err(|e| format!("not a readable Parquet file: {e}"))?;
    let md = r.metadata();
    let columns: Vec<Value> = md
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .map(|c| {
            let nullable = c.max_def_level() > 0;
            json!({
                "name": c.path().string(),
                "dtype": parquet_dtype(c),
                "nullable": nullable,
            })
        })
        .collect();
    Ok(json!({
        "rows": md.file_metadata().num_rows(),
        "row_groups": md.num_row_groups(),
        "columns": columns,
    }))
}

/// A readable column type: the logical type where there is one, else the
/// legacy converted type, else the physical type.
fn parquet_dtype(c: &parquet::schema::types::ColumnDescriptor) -> String {
    use parquet::basic::{ConvertedType as C, LogicalType, TimeUnit, Type};
    let unit = |u: &TimeUnit| match u {
        TimeUnit::MILLIS => "ms",
        TimeUnit::MICROS => "us",
        TimeUnit::NANOS => "ns",
    };
    if let Some(l) = c.logical_type_ref() {
        return match l {
            LogicalType::String => "string".into(),
            LogicalType::Enum => "enum".into(),
            LogicalType::Json => "json".into(),
            LogicalType::Bson => "bson".into(),
            LogicalType::Uuid => "uuid".into(),
            LogicalType::Date => "date".into(),
            LogicalType::Float16 => "float16".into(),
            LogicalType::Decimal(d) => format!("decimal({},{})", d.precision, d.scale),
            LogicalType::Integer(i) => {
                format!("{}int{}", if i.is_signed { "" } else { "u" }, i.bit_width)
            }
            LogicalType::Timestamp(t) => format!("timestamp[{}]", unit(&t.unit)),
            LogicalType::Time(t) => format!("time[{}]", unit(&t.unit)),
            other => format!("{other:?}").to_lowercase(),
        };
    }
    let converted = match c.converted_type() {
        C::UTF8 => Some("string".to_string()),
        C::ENUM => Some("enum".into()),
        C::JSON => Some("json".into()),
        C::BSON => Some("bson".into()),
        C::DATE => Some("date".into()),
        C::INTERVAL => Some("interval".into()),
        C::TIME_MILLIS => Some("time[ms]".into()),
        C::TIME_MICROS => Some("time[us]".into()),
        C::TIMESTAMP_MILLIS => Some("timestamp[ms]".into()),
        C::TIMESTAMP_MICROS => Some("timestamp[us]".into()),
        C::INT_8 => Some("int8".into()),
        C::INT_16 => Some("int16".into()),
        C::INT_32 => Some("int32".into()),
        C::INT_64 => Some("int64".into()),
        C::UINT_8 => Some("uint8".into()),
        C::UINT_16 => Some("uint16".into()),
        C::UINT_32 => Some("uint32".into()),
        C::UINT_64 => Some("uint64".into()),
        C::DECIMAL => Some(format!(
            "decimal({},{})",
            c.type_precision(),
            c.type_scale()
        )),
        _ => None,
    };
    if let Some(t) = converted {
        return t;
    }
    match c.physical_type() {
        Type::BOOLEAN => "bool".into(),
        Type::INT32 => "int32".into(),
        Type::INT64 => "int64".into(),
        Type::INT96 => "int96".into(),
        Type::FLOAT => "float32".into(),
        Type::DOUBLE => "float64".into(),
        Type::BYTE_ARRAY => "binary".into(),
        Type::FIXED_LEN_BYTE_ARRAY => format!("fixed_binary({})", c.type_length()),
    }
}

/// The narrowest type every value of a CSV column fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum CsvType {
    Empty,
    Bool,
    Int,
    Float,
    String,
}

impl CsvType {
    fn of(cell: &str) -> CsvType {
        let t = cell.trim();
        if t.is_empty() {
            CsvType::Empty
        } else if t.parse::<i64>().is_ok() {
            CsvType::Int
        } else if t.parse::<f64>().is_ok() {
            CsvType::Float
        } else if matches!(t.to_ascii_lowercase().as_str(), "true" | "false") {
            CsvType::Bool
        } else {
            CsvType::String
        }
    }

    /// The type of a column holding values of both types.
    fn join(self, other: CsvType) -> CsvType {
        use CsvType::*;
        match (self, other) {
            (Empty, x) | (x, Empty) => x,
            (a, b) if a == b => a,
            (Int, Float) | (Float, Int) => Float,
            _ => String,
        }
    }

    fn name(self) -> &'static str {
        match self {
            CsvType::Empty => "empty",
            CsvType::Bool => "bool",
            CsvType::Int => "int64",
            CsvType::Float => "float64",
            CsvType::String => "string",
        }
    }
}

/// Header row = column names; every further record is a row.
fn csv_summary(path: &Path, delimiter: u8) -> Result<Value, String> {
    let mut r = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        .flexible(true)
        .from_path(path)
        .map_err(|e| e.to_string())?;
    let names: Vec<String> = r
        .headers()
        .map_err(|e| e.to_string())?
        .iter()
        .map(str::to_string)
        .collect();
    let mut types = vec![CsvType::Empty; names.len()];
    let mut rows = 0u64;
    let mut ragged = 0u64;
    let mut rec = csv::StringRecord::new();
    while r.read_record(&mut rec).map_err(|e| e.to_string())? {
        rows += 1;
        if rec.len() != names.len() {
            ragged += 1;
        }
        for (i, cell) in rec.iter().enumerate().take(names.len()) {
            types[i] = types[i].join(CsvType::of(cell));
        }
    }
    let columns: Vec<Value> = names
        .iter()
        .zip(&types)
        .map(|(n, t)| json!({"name": n, "dtype": t.name()}))
        .collect();
    let mut out = json!({"rows": rows, "columns": columns});
    if ragged > 0 {
        out["ragged_rows"] = ragged.into();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_types_and_rows() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.csv"),
            "id,score,name,flag,blank\n1,0.5,\"x, y\",true,\n2,3,\"multi\nline\",False,\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("b.tsv"), "a\tb\n1\t2\n3\n").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        std::fs::write(dir.path().join("bad.npy"), "nope").unwrap();
        let s = summarise_dir(dir.path());
        let a = &s["files"]["a.csv"];
        assert_eq!(a["format"], "csv");
        assert_eq!(a["rows"], 2);
        let dtypes: Vec<&str> = a["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["dtype"].as_str().unwrap())
            .collect();
        assert_eq!(dtypes, ["int64", "float64", "string", "bool", "empty"]);
        assert_eq!(s["files"]["b.tsv"]["rows"], 2);
        assert_eq!(s["files"]["b.tsv"]["ragged_rows"], 1);
        assert!(s["files"]["bad.npy"]["error"].is_string());
        assert!(s["files"].get("notes.txt").is_none());
        assert!(s.get("truncated").is_none());
    }

    #[test]
    fn npy_and_parquet() {
        use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
        use parquet::file::properties::WriterProperties;
        use parquet::file::writer::SerializedFileWriter;
        use std::sync::Arc;

        let dir = tempfile::tempdir().unwrap();
        crate::ops::npy::write_f64(&dir.path().join("x.npy"), &[4, 2], &[0.0; 8]).unwrap();
        let schema = Arc::new(
            parquet::schema::parser::parse_message_type(
                "message m { required int64 id; optional double score; required binary name (STRING); }",
            )
            .unwrap(),
        );
        let f = std::fs::File::create(dir.path().join("t.parquet")).unwrap();
        let mut w =
            SerializedFileWriter::new(f, schema, Arc::new(WriterProperties::builder().build()))
                .unwrap();
        let mut rg = w.next_row_group().unwrap();
        let mut c = rg.next_column().unwrap().unwrap();
        c.typed::<Int64Type>()
            .write_batch(&[1, 2, 3], None, None)
            .unwrap();
        c.close().unwrap();
        let mut c = rg.next_column().unwrap().unwrap();
        c.typed::<DoubleType>()
            .write_batch(&[0.5, 1.5], Some(&[1, 0, 1]), None)
            .unwrap();
        c.close().unwrap();
        let mut c = rg.next_column().unwrap().unwrap();
        let names: Vec<ByteArray> = ["a", "b", "c"].into_iter().map(ByteArray::from).collect();
        c.typed::<ByteArrayType>()
            .write_batch(&names, None, None)
            .unwrap();
        c.close().unwrap();
        rg.close().unwrap();
        w.close().unwrap();

        let s = summarise_dir(dir.path());
        assert_eq!(
            s["files"]["x.npy"],
            json!({"format": "npy", "dtype": "float64", "shape": [4, 2], "rows": 4, "fortran_order": false})
        );
        assert_eq!(
            s["files"]["t.parquet"],
            json!({"format": "parquet", "rows": 3, "row_groups": 1, "columns": [
                {"name": "id", "dtype": "int64", "nullable": false},
                {"name": "score", "dtype": "float64", "nullable": true},
                {"name": "name", "dtype": "string", "nullable": false},
            ]})
        );
        std::fs::write(dir.path().join("t.parquet"), b"PAR1 random bytes").unwrap();
        let e = summarise_file(&dir.path().join("t.parquet"), "parquet");
        assert!(e["error"].as_str().unwrap().contains("Parquet"), "{e}");
    }
}
