//! The layering rules of `docs/architecture.md`, checked on the source tree.
//!
//! The library is five layers, lowest first: `store`, `format`, `catalog`,
//! `ops`, `mount`; the binary (`src/main.rs`, `src/cli/`) sits on top. This
//! test reads every `.rs` file under `src/`, strips comments, strings and
//! `#[cfg(test)]` items (test fixtures may reach up a layer), and fails on:
//! - a use of a higher layer (`crate::mount::…` from `ops`, say);
//! - an import cycle between modules, inside a layer too (a child file that
//!   uses its folder's `mod.rs` counts: shared types get their own file);
//! - printing or argument parsing below the binary;
//! - `object_store` named in the FUSE adapter, or a FUSE session spawned
//!   anywhere but `src/mount/fuse_session.rs`;
//! - a layer that shows a whole file (`pub mod x;`) instead of a `pub use`
//!   list, and test doubles compiled without `test` or `test-doubles`.
//!
//! The scanner is deliberately simple (paths that start with `crate::`,
//! `super::`, `self::` or, in the binary, `assetfs::`); its own unit tests
//! below plant each kind of violation and check that it is caught.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const LAYERS: [&str; 5] = ["store", "format", "catalog", "ops", "mount"];
/// The binary's modules are named `bin::…`; it is the top layer.
const BIN: &str = "bin";

fn rank(module: &str) -> usize {
    let top = module.split("::").next().unwrap_or("");
    if top == BIN {
        return LAYERS.len();
    }
    LAYERS
        .iter()
        .position(|l| *l == top)
        .unwrap_or_else(|| panic!("module {module} is in no layer: put it in one of {LAYERS:?}"))
}

/// One source file: its module path, and its text with comments, string and
/// char literals blanked and `#[cfg(test)]` items removed.
struct Source {
    module: String,
    /// Whether the module itself is only compiled for tests.
    test_only: bool,
    file: PathBuf,
    code: String,
    /// The text with comments and literals blanked but test items kept.
    all_code: String,
    /// The file as written.
    raw: String,
}

/// Blanks comments, string literals (raw too) and char literals, keeping
/// line structure so that positions stay meaningful.
fn strip(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let blank = |out: &mut Vec<u8>, c: u8| out.push(if c == b'\n' { b'\n' } else { b' ' });
    while i < b.len() {
        let c = b[i];
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                out.push(b' ');
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, b[i]);
                    i += 1;
                }
            }
        } else if c == b'r'
            && (b.get(i + 1) == Some(&b'"') || b.get(i + 1) == Some(&b'#'))
            && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'))
        {
            // Raw string r"…" or r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push(c);
                i += 1;
                continue;
            }
            // Keep the width: `"` then blanks for the `r` and hashes.
            out.push(b'"');
            out.resize(out.len() + (j - i), b' ');
            i = j + 1;
            loop {
                if i >= b.len() {
                    break;
                }
                if b[i] == b'"'
                    && b[i + 1..]
                        .iter()
                        .take(hashes)
                        .filter(|&&h| h == b'#')
                        .count()
                        == hashes
                {
                    out.push(b'"');
                    out.resize(out.len() + hashes, b' ');
                    i += 1 + hashes;
                    break;
                }
                blank(&mut out, b[i]);
                i += 1;
            }
        } else if c == b'"' {
            out.push(b'"');
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    blank(&mut out, b[i]);
                    i += 1;
                }
                if i < b.len() {
                    blank(&mut out, b[i]);
                    i += 1;
                }
            }
            out.push(b'"');
            i += 1;
        } else if c == b'\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            let close = if b.get(i + 1) == Some(&b'\\') {
                b[i + 2..]
                    .iter()
                    .position(|&x| x == b'\'')
                    .map(|p| i + 2 + p)
            } else if b.get(i + 2) == Some(&b'\'') {
                Some(i + 2)
            } else {
                // Multi-byte UTF-8 char literal.
                let s = &text[i + 1..];
                s.chars()
                    .next()
                    .filter(|ch| s[ch.len_utf8()..].starts_with('\''))
                    .map(|ch| i + 1 + ch.len_utf8())
            };
            match close {
                Some(end) => {
                    out.push(b'\'');
                    out.resize(out.len() + (end - i - 1), b' ');
                    out.push(b'\'');
                    i = end + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether an attribute's text makes its item test-only.
fn is_test_cfg(attr: &str) -> bool {
    let a: String = attr.chars().filter(|c| !c.is_whitespace()).collect();
    a.starts_with("#[cfg(test)") || a.starts_with("#[cfg(any(test,")
}

/// Removes items under a `#[cfg(test)]` (or `cfg(any(test, …))`) attribute:
/// a braced item up to its closing brace, anything else up to its `;`.
/// Returns the remaining code and the names of test-only `mod x;` lines.
fn drop_test_items(code: &str) -> (String, Vec<String>) {
    let b = code.as_bytes();
    let mut out = String::with_capacity(code.len());
    let mut test_mods = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'#' && b.get(i + 1) == Some(&b'[') {
            let end = match_bracket(b, i + 1, b'[', b']');
            let attr = &code[i..=end];
            if is_test_cfg(attr) {
                // Skip further attributes, then the item.
                let mut j = end + 1;
                loop {
                    while j < b.len() && b[j].is_ascii_whitespace() {
                        j += 1;
                    }
                    if b.get(j) == Some(&b'#') && b.get(j + 1) == Some(&b'[') {
                        j = match_bracket(b, j + 1, b'[', b']') + 1;
                    } else {
                        break;
                    }
                }
                let item_start = j;
                while j < b.len() && b[j] != b'{' && b[j] != b';' {
                    j += 1;
                }
                let head = &code[item_start..j.min(b.len())];
                let words: Vec<&str> = head.split_whitespace().collect();
                if j < b.len() && b[j] == b';' {
                    if let Some(p) = words.iter().position(|w| *w == "mod") {
                        if let Some(name) = words.get(p + 1) {
                            test_mods.push(name.trim_end_matches(';').to_string());
                        }
                    }
                    j += 1;
                } else if j < b.len() {
                    j = match_bracket(b, j, b'{', b'}') + 1;
                }
                for &c in &b[i..j.min(b.len())] {
                    out.push(if c == b'\n' { '\n' } else { ' ' });
                }
                i = j;
                continue;
            }
            out.push_str(attr);
            i = end + 1;
            continue;
        }
        let ch = code[i..].chars().next().unwrap();
        out.push(ch);
        i += ch.len_utf8();
    }
    (out, test_mods)
}

fn match_bracket(b: &[u8], open_at: usize, open: u8, close: u8) -> usize {
    let mut depth = 0;
    for (k, &c) in b.iter().enumerate().skip(open_at) {
        if c == open {
            depth += 1;
        } else if c == close {
            depth -= 1;
            if depth == 0 {
                return k;
            }
        }
    }
    b.len() - 1
}

/// Reads the tree under `root/src`.
fn load(root: &Path) -> Vec<Source> {
    let mut files = Vec::new();
    walk(&root.join("src"), &mut files);
    files.sort();
    let mut out = Vec::new();
    let mut test_files: BTreeSet<String> = BTreeSet::new();
    let mut pending = Vec::new();
    for f in files {
        let rel = f.strip_prefix(root.join("src")).unwrap().to_path_buf();
        let module = module_of(&rel);
        let text = std::fs::read_to_string(&f).unwrap();
        let all_code = strip(&text);
        let (code, test_mods) = drop_test_items(&all_code);
        for m in test_mods {
            let child = if module.is_empty() || module == BIN {
                m
            } else {
                format!("{module}::{m}")
            };
            test_files.insert(if module == BIN && !child.starts_with("bin::") {
                format!("{BIN}::{child}")
            } else {
                child
            });
        }
        pending.push((module, f, code, all_code, text));
    }
    for (module, file, code, all_code, raw) in pending {
        let test_only = test_files
            .iter()
            .any(|t| module == *t || module.starts_with(&format!("{t}::")));
        out.push(Source {
            module,
            test_only,
            file,
            code,
            all_code,
            raw,
        });
    }
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `store/client.rs` -> `store::client`, `mount/vfs/mod.rs` -> `mount::vfs`,
/// `lib.rs` -> ``, `main.rs` -> `bin`, `cli/args/mod.rs` -> `bin::cli::args`.
fn module_of(rel: &Path) -> String {
    let parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    let mut parts: Vec<String> = parts.into_iter().filter(|p| p != "mod").collect();
    match parts.first().map(String::as_str) {
        Some("lib") if parts.len() == 1 => return String::new(),
        Some("main") if parts.len() == 1 => return BIN.to_string(),
        Some(first) if !LAYERS.contains(&first) => parts.insert(0, BIN.to_string()),
        _ => {}
    }
    parts.join("::")
}

/// Every module path an item path names: `crate::a::{b::C, d}` gives
/// `a::b::C` and `a::d`, made absolute from `module` for `super`/`self`.
fn paths_in(code: &str, module: &str, children: &BTreeSet<String>) -> Vec<String> {
    let is_bin = module == BIN || module.starts_with("bin::");
    let mut out = Vec::new();
    let b = code.as_bytes();
    let child_starts: Vec<String> = children.iter().map(|c| format!("{c}::")).collect();
    let mut starts: Vec<&str> = vec!["crate::", "super::", "self::", "assetfs::"];
    starts.extend(child_starts.iter().map(String::as_str));
    let mut i = 0;
    while i < b.len() {
        let prev_ok =
            i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_' || b[i - 1] == b':');
        let hit = starts
            .iter()
            .find(|s| prev_ok && code[i..].starts_with(**s));
        let Some(s) = hit else {
            i += 1;
            continue;
        };
        let base: Vec<String> = match *s {
            c if !["crate::", "super::", "self::", "assetfs::"].contains(&c) => {
                // A path through a child module, relative to this one.
                let mut m = split(module);
                m.push(c.trim_end_matches("::").to_string());
                i += c.len();
                let (found, end) = parse_tree(code, i, m);
                out.extend(found.into_iter().map(|f| f.join("::")));
                i = end.max(i);
                continue;
            }
            "crate::" if is_bin => vec![BIN.to_string()],
            "crate::" => vec![],
            "assetfs::" if is_bin => vec![],
            "assetfs::" => {
                i += s.len();
                continue;
            }
            "self::" => split(module),
            _ => {
                let mut m = split(module);
                m.pop();
                m
            }
        };
        let (mut found, end) = parse_tree(code, i + s.len(), base);
        // `super::super::x`
        for f in &mut found {
            while let Some(p) = f.iter().position(|x| x == "super") {
                f.remove(p);
                if p > 0 {
                    f.remove(p - 1);
                }
            }
        }
        out.extend(found.into_iter().map(|f| f.join("::")));
        i = end.max(i + 1);
    }
    out
}

fn split(m: &str) -> Vec<String> {
    if m.is_empty() {
        vec![]
    } else {
        m.split("::").map(String::from).collect()
    }
}

/// Parses `a::b::{c, d::e}` at `i`: the full paths, and where it ended.
fn parse_tree(code: &str, mut i: usize, prefix: Vec<String>) -> (Vec<Vec<String>>, usize) {
    let b = code.as_bytes();
    let mut cur = prefix;
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < b.len() && b[i] == b'{' {
            let close = match_bracket(b, i, b'{', b'}');
            let mut all = Vec::new();
            let inner = &code[i + 1..close];
            let mut depth = 0;
            let mut start = 0;
            let ib = inner.as_bytes();
            for k in 0..=ib.len() {
                let at_end = k == ib.len();
                if !at_end && ib[k] == b'{' {
                    depth += 1;
                } else if !at_end && ib[k] == b'}' {
                    depth -= 1;
                }
                if at_end || (ib[k] == b',' && depth == 0) {
                    let part = inner[start..k].trim();
                    if !part.is_empty() {
                        if part == "self" {
                            all.push(cur.clone());
                        } else {
                            let (sub, _) = parse_tree(part, 0, cur.clone());
                            all.extend(sub);
                        }
                    }
                    start = k + 1;
                }
            }
            return (all, close + 1);
        }
        let s = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
            i += 1;
        }
        if s == i {
            return (vec![cur], i);
        }
        cur.push(code[s..i].to_string());
        if code[i..].starts_with("::") {
            i += 2;
        } else {
            return (vec![cur], i);
        }
    }
}

/// The module a path lands in: its longest prefix that is a known module.
fn target(path: &str, modules: &BTreeSet<String>) -> Option<String> {
    let parts = split(path);
    (1..=parts.len())
        .rev()
        .map(|n| parts[..n].join("::"))
        .find(|p| modules.contains(p))
}

struct Report {
    problems: Vec<String>,
}

fn check(root: &Path) -> Report {
    let sources = load(root);
    let modules: BTreeSet<String> = sources.iter().map(|s| s.module.clone()).collect();
    let mut problems = Vec::new();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in &sources {
        if s.module.is_empty() {
            check_lib_rs(s, &mut problems);
            continue;
        }
        let r = rank(&s.module);
        if !s.test_only {
            let prefix = format!("{}::", s.module);
            let children: BTreeSet<String> = modules
                .iter()
                .filter_map(|m| m.strip_prefix(&prefix))
                .filter(|rest| !rest.contains("::"))
                .map(String::from)
                .collect();
            for p in paths_in(&s.code, &s.module, &children) {
                let Some(t) = target(&p, &modules) else {
                    continue;
                };
                if t == s.module || t.is_empty() {
                    continue;
                }
                if rank(&t) > r {
                    problems.push(format!(
                        "{}: layer {} uses `{p}` from the higher layer {}",
                        s.file.display(),
                        layer_name(&s.module),
                        layer_name(&t)
                    ));
                }
                edges.entry(s.module.clone()).or_default().insert(t);
            }
        }
        check_source(s, &mut problems);
    }
    for cycle in cycles(&edges) {
        problems.push(format!("import cycle: {}", cycle.join(" -> ")));
    }
    Report { problems }
}

fn layer_name(m: &str) -> &str {
    m.split("::").next().unwrap_or(m)
}

fn check_lib_rs(s: &Source, problems: &mut Vec<String>) {
    for line in s.code.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let ok = LAYERS.iter().any(|l| line == format!("pub mod {l};")) || line.starts_with("#![");
        if !ok {
            problems.push(format!(
                "src/lib.rs may only declare the layers (`pub mod store;` …), found `{line}`"
            ));
        }
    }
}

fn check_source(s: &Source, problems: &mut Vec<String>) {
    let file = s.file.display();
    let below_bin = rank(&s.module) < LAYERS.len();
    if below_bin && !s.test_only {
        for bad in [
            "println!",
            "print!",
            "eprintln!",
            "eprint!",
            "dbg!",
            "clap::",
            "indicatif::",
            "env::args",
        ] {
            if contains_word(&s.code, bad) {
                problems.push(format!(
                    "{file}: `{bad}` below the binary (only src/main.rs and src/cli/ print or parse arguments)"
                ));
            }
        }
    }
    let fuse_adapter = s.module == "mount::fuse" || s.module.starts_with("mount::fuse::");
    if fuse_adapter && contains_word(&s.all_code, "object_store") {
        problems.push(format!("{file}: the FUSE adapter names object_store"));
    }
    if s.module != "mount::fuse_session" && !s.test_only && contains_word(&s.code, "spawn_mount") {
        problems.push(format!(
            "{file}: FUSE sessions are spawned only in src/mount/fuse_session.rs"
        ));
    }
    // A layer's mod.rs shows a chosen surface, not whole files.
    if LAYERS.contains(&s.module.as_str()) {
        for line in s.all_code.lines().map(str::trim) {
            if line.starts_with("pub mod ") && line.ends_with(';') {
                problems.push(format!(
                    "{file}: `{line}` shows a whole file; declare it `mod x;` and `pub use` what other layers need"
                ));
            }
        }
    }
    // The doubles: only with `test` or the `test-doubles` feature.
    if s.module == "store" {
        let c: String = s.raw.chars().filter(|c| !c.is_whitespace()).collect();
        if c.contains("moddoubles;") && !c.contains("#[cfg(any(test,feature=\"test-doubles\"))]") {
            problems.push(format!(
                "{file}: the test doubles must be compiled only with cfg(any(test, feature = \"test-doubles\"))"
            ));
        }
    }
}

fn contains_word(code: &str, word: &str) -> bool {
    code.match_indices(word).any(|(i, _)| {
        i == 0 || {
            let p = code.as_bytes()[i - 1];
            !(p.is_ascii_alphanumeric() || p == b'_') || word.starts_with(':')
        }
    })
}

/// Every cycle of the graph, one per strongly connected component (its
/// shortest cycle through the component's first module), so that a failure
/// names a concrete circle to cut.
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let nodes: BTreeSet<&String> = edges
        .keys()
        .chain(edges.values().flat_map(|v| v.iter()))
        .collect();
    let mut out = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for n in nodes {
        if seen.contains(n) {
            continue;
        }
        // Shortest path n -> … -> n by BFS.
        let mut prev: BTreeMap<String, String> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([n.clone()]);
        let mut found = false;
        while let Some(u) = queue.pop_front() {
            for v in edges.get(&u).into_iter().flatten() {
                if v == n {
                    let mut path = vec![n.clone()];
                    let mut x = u.clone();
                    while x != *n {
                        path.push(x.clone());
                        x = prev[&x].clone();
                    }
                    path.push(n.clone());
                    let last = path.len() - 1;
                    path[1..last].reverse();
                    seen.extend(path.iter().cloned());
                    out.push(path);
                    found = true;
                    break;
                }
                if !prev.contains_key(v) {
                    prev.insert(v.clone(), u.clone());
                    queue.push_back(v.clone());
                }
            }
            if found {
                break;
            }
        }
    }
    out
}

#[test]
fn layers_hold() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let r = check(root);
    assert!(
        r.problems.is_empty(),
        "{} layering problem(s) (see docs/architecture.md):\n{}",
        r.problems.len(),
        r.problems.join("\n")
    );
}

/// Plants each kind of violation in a scratch tree: the checker must see it.
#[test]
fn checker_catches_what_it_claims() {
    let dir = tempfile::tempdir().unwrap();
    let w = |rel: &str, body: &str| {
        let p = dir.path().join("src").join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    };
    w(
        "lib.rs",
        "pub mod store;\npub mod format;\npub mod mount;\n",
    );
    w("store/mod.rs", "mod client;\npub use client::Store;\n");
    w(
        "store/client.rs",
        "// crate::mount::x in a comment is fine\nconst S: &str = \"crate::mount::y\";\npub struct Store;\n",
    );
    w("format/mod.rs", "mod a;\nmod b;\npub use a::A;\n");
    w("format/a.rs", "use crate::format::b::B;\npub struct A;\n");
    w(
        "format/b.rs",
        "use super::a::A;\npub struct B;\n#[cfg(test)]\nmod tests { use crate::mount::Vfs; }\n",
    );
    w(
        "mount/mod.rs",
        "pub mod fuse;\nmod vfs;\npub use vfs::Vfs;\n",
    );
    w(
        "mount/vfs.rs",
        "pub struct Vfs;\nfn f() { println!(\"x\"); }\n",
    );
    w("mount/fuse.rs", "use object_store::ObjectStore;\n");
    w("main.rs", "mod cli;\nfn main() {}\n");
    w(
        "cli/mod.rs",
        "use assetfs::mount::Vfs;\nfn f() { println!(\"fine here\"); }\n",
    );
    let r = check(dir.path());
    let all = r.problems.join("\n");
    let expect = [
        "import cycle: format::a -> format::b -> format::a",
        "`println!` below the binary",
        "the FUSE adapter names object_store",
        "`pub mod fuse;` shows a whole file",
    ];
    for e in expect {
        assert!(all.contains(e), "missing {e:?} in:\n{all}");
    }
    assert_eq!(
        r.problems.len(),
        expect.len(),
        "unexpected problems:\n{all}"
    );

    // An upward use.
    w("format/b.rs", "use crate::mount::Vfs;\npub struct B;\n");
    let all = check(dir.path()).problems.join("\n");
    assert!(
        all.contains("layer format uses `mount::Vfs` from the higher layer mount"),
        "{all}"
    );
}

#[test]
fn paths_are_parsed_with_groups_and_super() {
    let none = BTreeSet::new();
    let p = paths_in(
        "use crate::format::{ids::{Hash, to_hex}, keys};\nuse super::b::C;\nlet x = crate::store::Store::new();",
        "format::a",
        &none,
    );
    assert_eq!(
        p,
        [
            "format::ids::Hash",
            "format::ids::to_hex",
            "format::keys",
            "format::b::C",
            "store::Store::new"
        ]
    );
    assert_eq!(
        paths_in("use assetfs::ops::push;", "bin::cli", &none),
        ["ops::push"]
    );
    assert_eq!(
        paths_in("use crate::cli::args::Cli;", "bin::cli::daemon", &none),
        ["bin::cli::args::Cli"]
    );
    let kids = BTreeSet::from(["client".to_string()]);
    assert_eq!(
        paths_in(
            "pub use client::{Store, StoreError};\nx::client::y",
            "store",
            &kids
        ),
        ["store::client::Store", "store::client::StoreError"]
    );
}
