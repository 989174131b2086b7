# Sourced by the other scripts: the example packages, their default ports, and where cargo puts
# their binaries. The list is read from each example's Cargo.toml
# ([package.metadata.sse-examples]), in the order of their ports: a new package is all it takes.
_examples_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# "port package" per example, sorted by port.
_examples_list() {
  local manifest package port
  for manifest in "$_examples_root"/examples/*/Cargo.toml; do
    package=$(sed -n 's/^name = "\(.*\)"$/\1/p' "$manifest" | head -n 1)
    port=$(sed -n '/^\[package\.metadata\.sse-examples\]/,/^\[/s/^port = \([0-9]*\).*/\1/p' "$manifest")
    if [ -z "$package" ] || [ -z "$port" ]; then
      echo "error: $manifest has no name or no [package.metadata.sse-examples] port" >&2
      return 1
    fi
    echo "$port $package"
  done | sort -n
}

packages=()
ports=()   # "package port" per line
while read -r port package; do
  packages+=("$package")
  ports+=("$package $port")
done < <(_examples_list)
[ ${#packages[@]} -gt 0 ] || { echo "error: no example found under $_examples_root/examples" >&2; exit 1; }

# The workspace's target directory (CARGO_TARGET_DIR or the default).
target_dir() {
  cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p'
}

# Builds the examples and sse-load in release mode, and sets `servers` to their binaries and
# `sse_load` to the load generator.
build_release_servers() {
  echo "building sse-load and ${packages[*]} (release) …"
  cargo build --release --quiet -p sse-load $(printf -- '-p %s ' "${packages[@]}")
  local dir
  dir=$(target_dir)
  sse_load="$dir/release/sse-load"
  servers=()
  for package in "${packages[@]}"; do servers+=("$dir/release/$package"); done
}
