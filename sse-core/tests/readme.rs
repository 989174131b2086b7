//! The README shows each framework's `GET /events` handler side by side. Those snippets are the
//! examples' own code with the comment lines left out: this fails when one drifts from its
//! source (or a framework has no snippet), naming the framework and the first line that differs.

use std::path::Path;

use sse_core::Framework;

const SECTION: &str = "### The same handler in each framework: `GET /events`";

/// The ```rust blocks of the section, by the framework named on the line before each.
fn snippets(readme: &str) -> Vec<(String, String)> {
    let section = readme
        .split_once(SECTION)
        .unwrap_or_else(|| panic!("README.md has no section {SECTION:?}"))
        .1;
    let section = section.split("\n## ").next().unwrap_or_default();
    let mut found = Vec::new();
    let mut lines = section.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some(name) = line.strip_suffix(':')
            && lines.peek() == Some(&"```rust")
        {
            lines.next();
            let code: Vec<&str> = lines.by_ref().take_while(|line| *line != "```").collect();
            found.push((name.to_owned(), code.join("\n")));
        }
    }
    found
}

/// Every `.rs` file of an example, with its comment lines left out.
fn source_without_comments(dir: &Path) -> String {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("src"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|path| {
            std::fs::read_to_string(path)
                .unwrap()
                .lines()
                .filter(|line| !line.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_readme_snippets_are_the_examples_code() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let snippets = snippets(&readme);
    let frameworks = Framework::all();
    let names: Vec<&str> = snippets.iter().map(|(name, _)| name.as_str()).collect();
    let expected: Vec<&str> = frameworks.iter().map(|framework| framework.name).collect();
    assert_eq!(
        names, expected,
        "one snippet per framework, in the order of their ports"
    );
    for (framework, (_, snippet)) in frameworks.iter().zip(&snippets) {
        let dir = root.join("examples").join(framework.name);
        let source = source_without_comments(&dir);
        if source.contains(snippet.as_str()) {
            continue;
        }
        let first = snippet.lines().next().unwrap_or_default();
        let at = source
            .find(first)
            .unwrap_or_else(|| panic!("{}: no line {first:?} in its source", framework.name));
        let differs = snippet
            .lines()
            .zip(source[at..].lines())
            .find(|(readme, code)| readme != code)
            .map_or_else(
                || "the source ends first".to_owned(),
                |pair| format!("{pair:?}"),
            );
        panic!(
            "README.md's {} snippet differs from {}: (README, source) = {differs}",
            framework.name,
            dir.display()
        );
    }
}

#[test]
fn snippets_are_read_by_the_framework_named_before_them() {
    let readme = format!("{SECTION}\n\nx:\n```rust\nfn events() {{}}\n```\n");
    assert_eq!(
        snippets(&readme),
        [("x".to_owned(), "fn events() {}".to_owned())]
    );
}
