//! The project's CONTRACT.md tags each rule with the checks that hold it (`[check-name]`), and
//! the README lists the checks by section. Both must match the suite: every tag names a real
//! check, every check is tagged somewhere and listed in the README.

use std::collections::BTreeSet;

/// Every check of the suite: one server's and the cluster's.
fn check_names() -> BTreeSet<String> {
    conformance::checks::all()
        .iter()
        .map(|check| check.name.to_owned())
        .chain(
            conformance::cluster::all()
                .iter()
                .map(|check| check.name.to_owned()),
        )
        .collect()
}

fn read(file: &str) -> String {
    let path = format!("{}/../{file}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A tag or a name in backquotes: lower-case words joined by `-`, maybe ending in `*`.
fn is_check_like(word: &str) -> bool {
    let stem = word.strip_suffix('*').unwrap_or(word);
    stem.len() > 1
        && stem.starts_with(|c: char| c.is_ascii_lowercase())
        && stem
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && (stem.contains('-') || !word.ends_with('*'))
}

/// The words inside `[…]` that are not Markdown links (`[text](url)`), split at commas.
fn tags(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        let Some(close) = after.find(']') else { break };
        let inside = &after[..close];
        let link = after[close + 1..].starts_with('(');
        let words: Vec<&str> = inside.split(',').map(str::trim).collect();
        if !link && words.iter().all(|word| is_check_like(word)) {
            found.extend(words.iter().map(|word| (*word).to_owned()));
        }
        rest = &after[close + 1..];
    }
    found
}

fn matches(tag: &str, name: &str) -> bool {
    match tag.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => tag == name,
    }
}

#[test]
fn every_contract_tag_names_a_check_and_every_check_is_tagged() {
    let names = check_names();
    let contract = read("CONTRACT.md");
    let tags = tags(&contract);
    assert!(tags.len() > 40, "too few tags found: {tags:?}");
    let unknown: Vec<&String> = tags
        .iter()
        .filter(|tag| !names.iter().any(|name| matches(tag, name)))
        .collect();
    assert!(
        unknown.is_empty(),
        "CONTRACT.md tags rules with checks that do not exist: {unknown:?}"
    );
    let untagged: Vec<&String> = names
        .iter()
        .filter(|name| !tags.iter().any(|tag| matches(tag, name)))
        .collect();
    assert!(
        untagged.is_empty(),
        "checks that no rule of CONTRACT.md is tagged with: {untagged:?}"
    );
}

#[test]
fn the_readme_lists_every_check() {
    let readme = read("README.md");
    let table = readme
        .split("The checks, by contract section:")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").nth(1))
        .expect("README.md has the table of checks by section");
    let listed: BTreeSet<String> = table
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|word| is_check_like(word) && !word.starts_with("--"))
        .map(str::to_owned)
        .collect();
    let names = check_names();
    let missing: Vec<&String> = names.difference(&listed).collect();
    let unknown: Vec<&String> = listed.difference(&names).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "README's table of checks: missing {missing:?}, not checks {unknown:?}"
    );
}
