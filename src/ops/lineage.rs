//! Lineage queries over version metadata: what a version was built from
//! (`lineage.inputs`, followed recursively) and which versions were built
//! from it (`--used-by`: every version record of every asset is scanned;
//! records carry the metadata, so no manifest is loaded, and they are cached
//! on the node because they never change).
//!
//! Both give a tree. A version reachable along two paths is expanded once;
//! later occurrences are marked `repeat` (the text view says "see above"), so
//! a diamond-shaped graph stays small and a corrupt cyclic one terminates.

use std::collections::{BTreeMap, BTreeSet};

use futures::stream::{self, StreamExt, TryStreamExt};
use serde_json::{json, Map, Value};

use crate::catalog::CatalogCache;
use crate::catalog::CatalogError;
use crate::format::{AssetId, Kind, Reference, Selector};

/// Concurrent record reads.
const PARALLEL: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// What a version was built from.
    Inputs,
    /// What was built from a version.
    UsedBy,
}

impl Direction {
    fn key(self) -> &'static str {
        match self {
            Direction::Inputs => "inputs",
            Direction::UsedBy => "used_by",
        }
    }
}

/// One node of a lineage tree.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// A concrete reference, e.g. `features/clicks@7`.
    pub reference: String,
    pub children: Vec<Node>,
    /// Already expanded elsewhere in the tree.
    pub repeat: bool,
    /// Children not shown because of the depth limit.
    pub truncated: bool,
    /// Why this version could not be read (e.g. it does not exist).
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tree {
    pub direction: Direction,
    pub root: Node,
}

/// The lineage inputs a version's metadata records.
pub fn inputs_of(meta: &Map<String, Value>) -> Vec<String> {
    meta.get("lineage")
        .and_then(|l| l.get("inputs"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// A stored input as (asset, version), when it names a concrete version.
fn concrete(s: &str) -> Result<(AssetId, u64), String> {
    let r = Reference::parse(s).map_err(|e| e.to_string())?;
    match r.selector {
        Selector::Version(v) => Ok((r.asset, v)),
        _ => Err("not a concrete version".into()),
    }
}

/// What `root` was built from, recursively (at most `depth` levels).
pub async fn inputs_tree(
    cache: &CatalogCache,
    root: &Reference,
    depth: Option<usize>,
) -> Result<Tree, CatalogError> {
    let v = cache.catalog().resolve(root).await?;
    let root_ref = root.asset.at(v).to_string();
    // Breadth-first over the records, one level of reads at a time.
    let mut edges: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut errors: BTreeMap<String, String> = BTreeMap::new();
    let mut frontier = vec![root_ref.clone()];
    let mut level = 0;
    while !frontier.is_empty() && depth.is_none_or(|d| level < d) {
        let reads: Vec<(String, Result<Vec<String>, String>)> = stream::iter(frontier)
            .map(|r| async move {
                let res = match concrete(&r) {
                    Ok((asset, v)) => cache
                        .record(&asset, v)
                        .await
                        .map(|rec| inputs_of(&rec.meta))
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e),
                };
                (r, res)
            })
            .buffer_unordered(PARALLEL)
            .collect()
            .await;
        let mut next = BTreeSet::new();
        for (r, res) in reads {
            match res {
                Ok(ins) => {
                    for i in &ins {
                        if !edges.contains_key(i) && !errors.contains_key(i) {
                            next.insert(i.clone());
                        }
                    }
                    edges.insert(r, ins);
                }
                Err(e) => {
                    errors.insert(r, e);
                }
            }
        }
        frontier = next
            .into_iter()
            .filter(|r| !edges.contains_key(r))
            .collect();
        level += 1;
    }
    Ok(Tree {
        direction: Direction::Inputs,
        root: build(&root_ref, &edges, &errors, depth),
    })
}

/// Every version of every asset with the inputs its record lists.
pub async fn all_inputs(
    cache: &CatalogCache,
) -> Result<BTreeMap<String, Vec<String>>, CatalogError> {
    let mut versions = vec![];
    for kind in Kind::ALL {
        for name in cache.catalog().assets(kind).await? {
            let asset = AssetId { kind, name };
            for v in cache.catalog().versions(&asset).await? {
                versions.push((asset.clone(), v));
            }
        }
    }
    stream::iter(versions)
        .map(|(asset, v)| async move {
            let rec = cache.record(&asset, v).await?;
            Ok::<_, CatalogError>((asset.at(v).to_string(), inputs_of(&rec.meta)))
        })
        .buffer_unordered(PARALLEL)
        .try_collect()
        .await
}

/// Which versions were built from `root`, recursively.
pub async fn used_by_tree(
    cache: &CatalogCache,
    root: &Reference,
    depth: Option<usize>,
) -> Result<Tree, CatalogError> {
    let v = cache.catalog().resolve(root).await?;
    let root_ref = root.asset.at(v).to_string();
    let mut users: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (r, inputs) in all_inputs(cache).await? {
        for i in BTreeSet::from_iter(inputs) {
            users.entry(i).or_default().push(r.clone());
        }
    }
    for list in users.values_mut() {
        list.sort_by_key(|a| ref_order(a));
    }
    Ok(Tree {
        direction: Direction::UsedBy,
        root: build(&root_ref, &users, &BTreeMap::new(), depth),
    })
}

/// Sort key: asset, then version numerically.
fn ref_order(r: &str) -> (String, u64) {
    match r.rsplit_once('@') {
        Some((a, v)) => (a.to_string(), v.parse().unwrap_or(u64::MAX)),
        None => (r.to_string(), 0),
    }
}

fn build(
    root: &str,
    edges: &BTreeMap<String, Vec<String>>,
    errors: &BTreeMap<String, String>,
    depth: Option<usize>,
) -> Node {
    let mut expanded = BTreeSet::new();
    build_node(root, edges, errors, depth, &mut expanded)
}

fn build_node(
    r: &str,
    edges: &BTreeMap<String, Vec<String>>,
    errors: &BTreeMap<String, String>,
    depth: Option<usize>,
    expanded: &mut BTreeSet<String>,
) -> Node {
    let mut node = Node {
        reference: r.to_string(),
        children: vec![],
        repeat: false,
        truncated: false,
        error: errors.get(r).cloned(),
    };
    let kids = edges.get(r).cloned().unwrap_or_default();
    if kids.is_empty() {
        return node;
    }
    if expanded.contains(r) {
        node.repeat = true;
        return node;
    }
    if depth == Some(0) {
        node.truncated = true;
        return node;
    }
    expanded.insert(r.to_string());
    let mut seen_here = BTreeSet::new();
    for k in kids {
        // The same input listed twice is one edge.
        if seen_here.insert(k.clone()) {
            node.children.push(build_node(
                &k,
                edges,
                errors,
                depth.map(|d| d - 1),
                expanded,
            ));
        }
    }
    node
}

impl Tree {
    /// Every distinct version in the tree except the root, sorted.
    pub fn all(&self) -> Vec<String> {
        fn walk(n: &Node, out: &mut BTreeSet<(String, u64)>) {
            for c in &n.children {
                out.insert(ref_order(&c.reference));
                walk(c, out);
            }
        }
        let mut out = BTreeSet::new();
        walk(&self.root, &mut out);
        out.remove(&ref_order(&self.root.reference));
        out.into_iter().map(|(a, v)| format!("{a}@{v}")).collect()
    }

    /// `{"ref": ..., "inputs"|"used_by": [...], "all": [...]}`; a node may
    /// carry `repeat`, `truncated` or `error`.
    pub fn to_json(&self) -> Value {
        fn node(n: &Node, key: &str) -> Value {
            let mut m = Map::new();
            m.insert("ref".into(), n.reference.clone().into());
            m.insert(
                key.into(),
                Value::Array(n.children.iter().map(|c| node(c, key)).collect()),
            );
            if n.repeat {
                m.insert("repeat".into(), true.into());
            }
            if n.truncated {
                m.insert("truncated".into(), true.into());
            }
            if let Some(e) = &n.error {
                m.insert("error".into(), e.clone().into());
            }
            Value::Object(m)
        }
        let mut v = node(&self.root, self.direction.key());
        v["all"] = json!(self.all());
        v
    }

    /// The tree drawn with box characters.
    pub fn render(&self) -> String {
        fn line(n: &Node) -> String {
            let mut s = n.reference.clone();
            if n.repeat {
                s.push_str(" (see above)");
            }
            if n.truncated {
                s.push_str(" ...");
            }
            if let Some(e) = &n.error {
                s.push_str(&format!(" (unreadable: {e})"));
            }
            s
        }
        fn walk(n: &Node, prefix: &str, out: &mut String) {
            for (i, c) in n.children.iter().enumerate() {
                let last = i + 1 == n.children.len();
                out.push_str(&format!(
                    "{prefix}{}{}\n",
                    if last { "└── " } else { "├── " },
                    line(c)
                ));
                let deeper = format!("{prefix}{}", if last { "    " } else { "│   " });
                walk(c, &deeper, out);
            }
        }
        let mut out = format!("{}\n", line(&self.root));
        walk(&self.root, "", &mut out);
        if self.root.children.is_empty() && self.root.error.is_none() && !self.root.truncated {
            out.push_str(match self.direction {
                Direction::Inputs => "(no inputs recorded)\n",
                Direction::UsedBy => "(no version records it as an input)\n",
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edges(list: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    #[test]
    fn diamond_cycle_depth_and_render() {
        let e = edges(&[
            (
                "models/m@1",
                &["features/a@1", "features/b@1", "features/a@1"],
            ),
            ("features/a@1", &["features/raw@2"]),
            ("features/b@1", &["features/raw@2"]),
            ("features/raw@2", &["features/raw@2"]),
        ]);
        let t = Tree {
            direction: Direction::Inputs,
            root: build("models/m@1", &e, &BTreeMap::new(), None),
        };
        assert_eq!(
            t.render(),
            "models/m@1\n\
             ├── features/a@1\n\
             │   └── features/raw@2\n\
             │       └── features/raw@2 (see above)\n\
             └── features/b@1\n\
             \u{20}   └── features/raw@2 (see above)\n"
        );
        assert_eq!(t.all(), ["features/a@1", "features/b@1", "features/raw@2"]);
        let j = t.to_json();
        assert_eq!(j["inputs"][1]["inputs"][0]["repeat"], true);
        let t = Tree {
            direction: Direction::Inputs,
            root: build("models/m@1", &e, &BTreeMap::new(), Some(1)),
        };
        assert!(t.root.children[0].truncated);
        assert_eq!(t.all().len(), 2);
        let alone = Tree {
            direction: Direction::UsedBy,
            root: build("models/z@1", &e, &BTreeMap::new(), None),
        };
        assert!(alone.render().contains("no version records it"));
        assert_eq!(
            alone.to_json(),
            json!({"ref": "models/z@1", "used_by": [], "all": []})
        );
    }

    #[test]
    fn versions_sort_numerically() {
        let mut v = vec!["models/a@10", "models/a@9", "features/b@1"];
        v.sort_by_key(|a| ref_order(a));
        assert_eq!(v, ["features/b@1", "models/a@9", "models/a@10"]);
    }
}
