//! NumPy `.npy` files: the header (dtype, shape, memory order), for schema
//! summaries, and the values of plain numeric arrays, for the numeric
//! comparison of stored tests.
//!
//! Format (numpy.lib.format): the magic `\x93NUMPY`, a major and minor
//! version byte, the header length (u16 little-endian in version 1, u32 in
//! versions 2 and 3), then the header, a Python dict literal such as
//! `{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }`, padded with
//! spaces and a newline; the raw array data follows.

use std::io::Read;
use std::path::Path;

const MAGIC: &[u8] = b"\x93NUMPY";
/// Headers are small; a larger one is not a sane .npy file.
const MAX_HEADER: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not a .npy file: {0}")]
    Format(String),
    #[error(
        "dtype {0} is not a plain numeric type (numeric comparison needs bool, int, uint or float)"
    )]
    NotNumeric(String),
    #[error("the data is truncated: {want} bytes expected after the header, {got} present")]
    Truncated { want: u64, got: u64 },
}

/// What an `.npy` header says.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// The dtype as written: `<f8`, `|u1`, or the repr of a structured dtype.
    pub descr: String,
    /// True when `descr` is a list of fields (a structured array).
    pub structured: bool,
    pub fortran_order: bool,
    pub shape: Vec<u64>,
    /// Byte offset of the data.
    pub data_offset: u64,
}

impl Header {
    /// Number of elements (1 for a 0-d array).
    pub fn len(&self) -> u64 {
        self.shape.iter().product()
    }

    /// The NumPy name of the dtype (`float64`, `int32`, `bool`), or the
    /// descr as written when it is not a plain numeric type.
    pub fn dtype_name(&self) -> String {
        match Dtype::parse(&self.descr) {
            Some(d) => d.name(),
            None => self.descr.clone(),
        }
    }
}

/// Reads the header of an `.npy` stream.
pub fn read_header(r: &mut impl Read) -> Result<Header, NpyError> {
    let mut pre = [0u8; 8];
    r.read_exact(&mut pre)
        .map_err(|_| NpyError::Format("shorter than the magic string".into()))?;
    if &pre[..6] != MAGIC {
        return Err(NpyError::Format("no \\x93NUMPY magic string".into()));
    }
    let major = pre[6];
    let (len, prefix) = match major {
        1 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b)?;
            (u16::from_le_bytes(b) as usize, 10)
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            r.read_exact(&mut b)?;
            (u32::from_le_bytes(b) as usize, 12)
        }
        v => return Err(NpyError::Format(format!("unknown format version {v}"))),
    };
    if len > MAX_HEADER {
        return Err(NpyError::Format(format!("header of {len} bytes")));
    }
    let mut text = vec![0u8; len];
    r.read_exact(&mut text)
        .map_err(|_| NpyError::Format("truncated header".into()))?;
    let text =
        String::from_utf8(text).map_err(|_| NpyError::Format("header is not text".into()))?;
    let lit = Parser::new(&text)
        .value()
        .map_err(|e| NpyError::Format(format!("header {:?}: {e}", text.trim())))?;
    let Lit::Dict(items) = lit else {
        return Err(NpyError::Format("header is not a dict".into()));
    };
    let get = |k: &str| {
        items
            .iter()
            .find(|(key, _)| matches!(key, Lit::Str(s) if s == k))
            .map(|(_, v)| v)
    };
    let (descr, structured) = match get("descr") {
        Some(Lit::Str(s)) => (s.clone(), false),
        Some(other @ Lit::List(_)) => (other.repr(), true),
        _ => return Err(NpyError::Format("header has no `descr`".into())),
    };
    let fortran_order = match get("fortran_order") {
        Some(Lit::Bool(b)) => *b,
        _ => return Err(NpyError::Format("header has no `fortran_order`".into())),
    };
    let shape = match get("shape") {
        Some(Lit::Tuple(dims)) => dims
            .iter()
            .map(|d| match d {
                Lit::Int(n) if *n >= 0 => Ok(*n as u64),
                _ => Err(NpyError::Format("`shape` holds a non-integer".into())),
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err(NpyError::Format("header has no `shape` tuple".into())),
    };
    Ok(Header {
        descr,
        structured,
        fortran_order,
        shape,
        data_offset: (prefix + len) as u64,
    })
}

pub fn read_header_file(path: &Path) -> Result<Header, NpyError> {
    let mut f = std::io::BufReader::new(std::fs::File::open(path)?);
    read_header(&mut f)
}

/// A numeric array's values as `f64`, in C (row-major) order.
#[derive(Debug, Clone)]
pub struct Array {
    pub header: Header,
    pub values: Vec<f64>,
}

/// Reads a whole `.npy` file of a plain numeric dtype.
pub fn read_values(path: &Path) -> Result<Array, NpyError> {
    let bytes = std::fs::read(path)?;
    let header = read_header(&mut &bytes[..])?;
    let dtype = Dtype::parse(&header.descr)
        .filter(|_| !header.structured)
        .ok_or_else(|| NpyError::NotNumeric(header.descr.clone()))?;
    let n = header.len();
    let want = n.saturating_mul(dtype.size as u64);
    let data = &bytes[header.data_offset as usize..];
    if (data.len() as u64) < want {
        return Err(NpyError::Truncated {
            want,
            got: data.len() as u64,
        });
    }
    let mut values: Vec<f64> = data
        .chunks_exact(dtype.size)
        .take(n as usize)
        .map(|c| dtype.decode(c))
        .collect();
    if header.fortran_order && header.shape.len() > 1 {
        values = fortran_to_c(&values, &header.shape);
    }
    Ok(Array { header, values })
}

/// Reorders column-major values into row-major order.
fn fortran_to_c(values: &[f64], shape: &[u64]) -> Vec<f64> {
    let dims: Vec<usize> = shape.iter().map(|d| *d as usize).collect();
    let mut out = Vec::with_capacity(values.len());
    let mut idx = vec![0usize; dims.len()];
    for _ in 0..values.len() {
        // Column-major offset of the current (row-major ordered) index.
        let mut off = 0usize;
        for k in (0..dims.len()).rev() {
            off = off * dims[k] + idx[k];
        }
        out.push(values[off]);
        for k in (0..dims.len()).rev() {
            idx[k] += 1;
            if idx[k] < dims[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Bool,
    Int,
    Uint,
    Float,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Dtype {
    kind: Kind,
    size: usize,
    big_endian: bool,
}

impl Dtype {
    /// `<f8`, `>i4`, `|u1`, `|b1`, `=f4`; None for anything else.
    fn parse(descr: &str) -> Option<Dtype> {
        let mut chars = descr.chars();
        let order = chars.next()?;
        let big_endian = match order {
            '<' | '|' => false,
            '>' => true,
            '=' => cfg!(target_endian = "big"),
            _ => return None,
        };
        let kind = match chars.next()? {
            'b' => Kind::Bool,
            'i' => Kind::Int,
            'u' => Kind::Uint,
            'f' => Kind::Float,
            _ => return None,
        };
        let size: usize = chars.as_str().parse().ok()?;
        let ok = match kind {
            Kind::Bool => size == 1,
            Kind::Int | Kind::Uint => matches!(size, 1 | 2 | 4 | 8),
            Kind::Float => matches!(size, 2 | 4 | 8),
        };
        ok.then_some(Dtype {
            kind,
            size,
            big_endian,
        })
    }

    fn name(&self) -> String {
        match self.kind {
            Kind::Bool => "bool".into(),
            Kind::Int => format!("int{}", self.size * 8),
            Kind::Uint => format!("uint{}", self.size * 8),
            Kind::Float => format!("float{}", self.size * 8),
        }
    }

    fn decode(&self, b: &[u8]) -> f64 {
        let mut buf = [0u8; 8];
        buf[..self.size].copy_from_slice(b);
        if self.big_endian {
            buf[..self.size].reverse();
        }
        let u = u64::from_le_bytes(buf);
        match (self.kind, self.size) {
            (Kind::Bool, _) => (u != 0) as u8 as f64,
            (Kind::Uint, _) => u as f64,
            (Kind::Int, n) => {
                // Sign-extend from n bytes.
                let shift = 64 - 8 * n as u32;
                (((u << shift) as i64) >> shift) as f64
            }
            (Kind::Float, 2) => f16_to_f64(u as u16),
            (Kind::Float, 4) => f32::from_bits(u as u32) as f64,
            (Kind::Float, _) => f64::from_bits(u),
        }
    }
}

/// IEEE 754 half precision to f64.
fn f16_to_f64(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let frac = (h & 0x3ff) as f64;
    sign * match exp {
        0 => frac * 2f64.powi(-24),
        31 if frac == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (1.0 + frac / 1024.0) * 2f64.powi(e - 15),
    }
}

/// The Python literals an `.npy` header uses.
#[derive(Debug, Clone, PartialEq)]
enum Lit {
    Str(String),
    Int(i64),
    Bool(bool),
    None,
    Tuple(Vec<Lit>),
    List(Vec<Lit>),
    Dict(Vec<(Lit, Lit)>),
}

impl Lit {
    fn repr(&self) -> String {
        let seq = |v: &[Lit]| v.iter().map(Lit::repr).collect::<Vec<_>>().join(", ");
        match self {
            Lit::Str(s) => format!("'{s}'"),
            Lit::Int(n) => n.to_string(),
            Lit::Bool(true) => "True".into(),
            Lit::Bool(false) => "False".into(),
            Lit::None => "None".into(),
            Lit::Tuple(v) if v.len() == 1 => format!("({},)", v[0].repr()),
            Lit::Tuple(v) => format!("({})", seq(v)),
            Lit::List(v) => format!("[{}]", seq(v)),
            Lit::Dict(kv) => format!(
                "{{{}}}",
                kv.iter()
                    .map(|(k, v)| format!("{}: {}", k.repr(), v.repr()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn new(s: &'a str) -> Self {
        Parser {
            s: s.as_bytes(),
            i: 0,
        }
    }

    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.i).copied()
    }

    fn value(&mut self) -> Result<Lit, String> {
        match self.peek().ok_or("unexpected end")? {
            b'{' => {
                self.i += 1;
                let mut items = vec![];
                loop {
                    if self.peek() == Some(b'}') {
                        self.i += 1;
                        return Ok(Lit::Dict(items));
                    }
                    let k = self.value()?;
                    if self.peek() != Some(b':') {
                        return Err("expected `:`".into());
                    }
                    self.i += 1;
                    let v = self.value()?;
                    items.push((k, v));
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {}
                        _ => return Err("expected `,` or `}`".into()),
                    }
                }
            }
            open @ (b'(' | b'[') => {
                let close = if open == b'(' { b')' } else { b']' };
                self.i += 1;
                let mut items = vec![];
                loop {
                    if self.peek() == Some(close) {
                        self.i += 1;
                        return Ok(if open == b'(' {
                            Lit::Tuple(items)
                        } else {
                            Lit::List(items)
                        });
                    }
                    items.push(self.value()?);
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(c) if c == close => {}
                        _ => return Err("expected `,` or a closing bracket".into()),
                    }
                }
            }
            q @ (b'\'' | b'"') => {
                self.i += 1;
                let start = self.i;
                while self.i < self.s.len() && self.s[self.i] != q {
                    self.i += 1;
                }
                if self.i >= self.s.len() {
                    return Err("unterminated string".into());
                }
                let text = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                self.i += 1;
                Ok(Lit::Str(text))
            }
            c if c == b'-' || c.is_ascii_digit() => {
                let start = self.i;
                self.i += 1;
                while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
                    self.i += 1;
                }
                // Python 2 era files may write `3L`.
                let text = std::str::from_utf8(&self.s[start..self.i]).expect("ascii");
                if self.s.get(self.i) == Some(&b'L') {
                    self.i += 1;
                }
                text.parse()
                    .map(Lit::Int)
                    .map_err(|_| format!("bad integer {text}"))
            }
            _ => {
                for (word, lit) in [
                    ("True", Lit::Bool(true)),
                    ("False", Lit::Bool(false)),
                    ("None", Lit::None),
                ] {
                    if self.s[self.i..].starts_with(word.as_bytes()) {
                        self.i += word.len();
                        return Ok(lit);
                    }
                }
                Err(format!("unexpected character at offset {}", self.i))
            }
        }
    }
}

/// Writes a C-order `<f8` array: for tests and examples.
pub fn write_f64(path: &Path, shape: &[u64], values: &[f64]) -> std::io::Result<()> {
    let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
    let shape_repr = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {shape_repr}, }}");
    // Pad so that the data starts on a 64-byte boundary; the header ends in \n.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + values.len() * 8);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(header: &str, data: &[u8]) -> Vec<u8> {
        let mut h = header.to_string();
        h.push('\n');
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(h.len() as u16).to_le_bytes());
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn header_and_values() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        write_f64(&p, &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.5]).unwrap();
        let h = read_header_file(&p).unwrap();
        assert_eq!(h.shape, vec![2, 3]);
        assert_eq!(h.dtype_name(), "float64");
        assert_eq!(h.data_offset % 64, 0);
        let a = read_values(&p).unwrap();
        assert_eq!(a.values, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.5]);
    }

    #[test]
    fn ints_big_endian_fortran_and_structured() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("i.npy");
        let data: Vec<u8> = [-1i16, 2, -3, 4]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        std::fs::write(
            &p,
            npy(
                "{'descr': '>i2', 'fortran_order': True, 'shape': (2, 2), }",
                &data,
            ),
        )
        .unwrap();
        let a = read_values(&p).unwrap();
        // Column-major [[-1, -3], [2, 4]] stored as -1, 2, -3, 4.
        assert_eq!(a.values, vec![-1.0, -3.0, 2.0, 4.0]);
        assert_eq!(a.header.dtype_name(), "int16");

        std::fs::write(
            &p,
            npy(
                "{'descr': [('a', '<f4'), ('b', '<i8')], 'fortran_order': False, 'shape': (5,), }",
                &[0; 60],
            ),
        )
        .unwrap();
        let h = read_header_file(&p).unwrap();
        assert!(h.structured);
        assert_eq!(h.descr, "[('a', '<f4'), ('b', '<i8')]");
        assert_eq!(h.shape, vec![5]);
        assert!(matches!(read_values(&p), Err(NpyError::NotNumeric(_))));

        std::fs::write(
            &p,
            npy(
                "{'descr': '<f8', 'fortran_order': False, 'shape': (4,), }",
                &[0; 8],
            ),
        )
        .unwrap();
        assert!(matches!(read_values(&p), Err(NpyError::Truncated { .. })));
        std::fs::write(&p, b"not numpy at all").unwrap();
        assert!(matches!(read_header_file(&p), Err(NpyError::Format(_))));
    }

    #[test]
    fn half_floats() {
        assert_eq!(f16_to_f64(0x3c00), 1.0);
        assert_eq!(f16_to_f64(0xc000), -2.0);
        assert_eq!(f16_to_f64(0x3555), 0.333251953125);
    }
}
