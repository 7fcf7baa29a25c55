//! The layout's promises that a reader of the code relies on, checked on the tree itself.

use std::collections::HashSet;
use std::path::Path;

/// How many consecutive lines make a twinned run: fewer are coincidences of trait signatures
/// and error plumbing, not a statement written twice.
const RUN: usize = 3;

/// One backend's lines as the comparison sees them: trimmed, with placeholders (`$1`, `?`) and
/// the backends' names (`Sqlite`, `Pg`, `Postgres`) made alike, and without what says nothing
/// (comments, imports, attributes, lines under 12 characters such as `.await?;` or `Ok(())`).
fn backend_lines(dir: &str) -> Vec<Vec<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/store")
        .join(dir);
    let placeholder = regex::Regex::new(r"\$\d+|\?\d*").unwrap();
    let mut files: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(|l| {
                    let l = placeholder.replace_all(l.trim(), "?").into_owned();
                    ["Sqlite", "Postgres", "Pg"]
                        .iter()
                        .fold(l, |l, name| l.replace(name, "DB"))
                        .replace("sqlite", "db")
                        .replace("postgres", "db")
                })
                .filter(|l| {
                    l.len() >= 12
                        && !l.starts_with("//")
                        && !l.starts_with("use ")
                        && !l.starts_with("#[")
                })
                .collect()
        })
        .collect()
}

/// Of `ours`' lines, how many stand in a run of [`RUN`] or more that `theirs` has too, and how
/// many there are.
fn twinned(ours: &[Vec<String>], theirs: &[Vec<String>]) -> (usize, usize) {
    let runs: HashSet<&[String]> = theirs.iter().flat_map(|f| f.windows(RUN)).collect();
    let (mut twinned, mut total) = (0, 0);
    for file in ours {
        let mut marked = vec![false; file.len()];
        for (i, window) in file.windows(RUN).enumerate() {
            if runs.contains(window) {
                marked[i..i + RUN].iter_mut().for_each(|m| *m = true);
            }
        }
        twinned += marked.iter().filter(|m| **m).count();
        total += file.len();
    }
    (twinned, total)
}

#[test]
fn backend_statements_are_written_once() {
    // What both engines run alike lives in `store::sql`; the backends keep what truly differs.
    let sqlite = backend_lines("sqlite");
    let postgres = backend_lines("postgres");
    for (name, ours, theirs) in [
        ("sqlite", &sqlite, &postgres),
        ("postgres", &postgres, &sqlite),
    ] {
        let (twinned, total) = twinned(ours, theirs);
        let share = 100.0 * twinned as f64 / total as f64;
        println!("store/{name}: {twinned} of {total} lines twinned ({share:.0}%)");
        assert!(
            share < 20.0,
            "store/{name} repeats the other backend in {twinned} of {total} lines ({share:.0}%): \
             move what both run alike into store::sql"
        );
    }
}
