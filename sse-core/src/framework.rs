//! Which implementation is running. Each example describes itself once, in its own `Cargo.toml`:
//!
//! ```toml
//! [package.metadata.sse-examples]
//! framework = "axum"   # its name in /health, the demo page and every report
//! port = 3001          # its default PORT
//! ```
//!
//! The example reads that at start ([`this_framework!`](crate::this_framework)); the test
//! suites, the scripts, the end-to-end harness and the demo page take the list of frameworks
//! from the same place ([`Framework::all_in`]; `scripts/examples.sh`; `web-demo/frameworks.js`,
//! generated from it and tested to match). Adding a framework is one new package.

use std::path::Path;

use serde::Deserialize;

/// One example: its framework's name, its package (and binary), its default port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framework {
    /// `axum`, `actix-web`, …
    pub name: &'static str,
    /// The package and binary name, `axum-example`, …
    pub package: &'static str,
    pub default_port: u16,
}

/// The [`Framework`] of the package being compiled, from its `Cargo.toml`.
#[macro_export]
macro_rules! this_framework {
    () => {
        $crate::Framework::from_manifest(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/Cargo.toml"
        )))
        .unwrap_or_else(|error| panic!("{}/Cargo.toml: {error}", env!("CARGO_MANIFEST_DIR")))
    };
}

#[derive(Deserialize)]
struct Manifest {
    package: Package,
}

#[derive(Deserialize)]
struct Package {
    name: String,
    metadata: Option<Metadata>,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(rename = "sse-examples")]
    sse_examples: Option<Described>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Described {
    framework: String,
    port: u16,
}

impl Framework {
    /// The framework a package's manifest describes (`[package.metadata.sse-examples]`). The
    /// strings are kept for the life of the process: this is read once per example.
    pub fn from_manifest(manifest: &str) -> Result<Self, String> {
        let manifest: Manifest = toml::from_str(manifest).map_err(|error| error.to_string())?;
        let Package { name, metadata } = manifest.package;
        let described = metadata
            .and_then(|metadata| metadata.sse_examples)
            .ok_or_else(|| {
                format!("package {name} has no [package.metadata.sse-examples] (framework, port)")
            })?;
        Ok(Self {
            name: described.framework.leak(),
            package: name.leak(),
            default_port: described.port,
        })
    }

    /// Every example of the workspace at `root` (the packages in `root/examples/`), in the
    /// order of their default ports.
    pub fn all_in(root: &Path) -> Result<Vec<Self>, String> {
        let examples = root.join("examples");
        let entries = std::fs::read_dir(&examples)
            .map_err(|error| format!("{}: {error}", examples.display()))?;
        let mut all = Vec::new();
        for entry in entries {
            let manifest = entry
                .map_err(|error| error.to_string())?
                .path()
                .join("Cargo.toml");
            if manifest.is_file() {
                let text = std::fs::read_to_string(&manifest)
                    .map_err(|error| format!("{}: {error}", manifest.display()))?;
                all.push(
                    Self::from_manifest(&text)
                        .map_err(|error| format!("{}: {error}", manifest.display()))?,
                );
            }
        }
        all.sort_by_key(|framework| framework.default_port);
        Ok(all)
    }

    /// Every example of this workspace (for the workspace's own tests and tools).
    pub fn all() -> Vec<Self> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        Self::all_in(&root).unwrap_or_else(|error| panic!("the workspace's examples: {error}"))
    }
}

/// `web-demo/frameworks.js`, as [`Framework::all`] says it should read: the demo page's list
/// (a classic script, so that the page still works opened from disk) and the e2e harness's.
pub fn frameworks_js(all: &[Framework]) -> String {
    let mut js = String::from(
        "// Generated from each example's [package.metadata.sse-examples] by\n\
         // `SSE_EXAMPLES_BLESS=1 cargo test -p sse-core frameworks_js`; do not edit.\n\
         // Read by web-demo/index.html (inlined when a server serves the page) and e2e/harness.mjs.\n\
         const FRAMEWORKS = [\n",
    );
    for framework in all {
        js.push_str(&format!(
            "  {{ name: '{}', package: '{}', port: {} }},\n",
            framework.name, framework.package, framework.default_port
        ));
    }
    js.push_str("];\n");
    js
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_describes_its_framework() {
        let manifest = "[package]\nname = \"x-example\"\nversion = \"0.1.0\"\n\n\
                        [package.metadata.sse-examples]\nframework = \"x\"\nport = 3009\n";
        assert_eq!(
            Framework::from_manifest(manifest),
            Ok(Framework {
                name: "x",
                package: "x-example",
                default_port: 3009
            })
        );
    }

    #[test]
    fn a_manifest_without_the_description_is_refused_by_name() {
        let error = Framework::from_manifest("[package]\nname = \"x-example\"\n").unwrap_err();
        assert!(
            error.contains("x-example") && error.contains("sse-examples"),
            "{error}"
        );
        let error = Framework::from_manifest(
            "[package]\nname = \"x\"\n[package.metadata.sse-examples]\nframework = \"x\"\nport = 70000\n",
        )
        .unwrap_err();
        assert!(error.contains("port"), "{error}");
    }

    #[test]
    fn the_workspace_examples_are_named_alike_and_have_ports_of_their_own() {
        let all = Framework::all();
        assert!(all.len() >= 2, "{all:?}");
        for (i, framework) in all.iter().enumerate() {
            assert_eq!(framework.package, format!("{}-example", framework.name));
            for other in &all[i + 1..] {
                assert_ne!(
                    framework.default_port, other.default_port,
                    "{framework:?} {other:?}"
                );
            }
        }
    }

    /// `web-demo/frameworks.js` is generated: this fails when it no longer matches the
    /// examples, and `SSE_EXAMPLES_BLESS=1` rewrites it.
    #[test]
    fn frameworks_js_is_current() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web-demo/frameworks.js");
        let expected = frameworks_js(&Framework::all());
        if std::env::var_os("SSE_EXAMPLES_BLESS").is_some() {
            std::fs::write(&path, &expected).unwrap();
        }
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            current == expected,
            "{} is out of date: run SSE_EXAMPLES_BLESS=1 cargo test -p sse-core frameworks_js",
            path.display()
        );
    }
}
