# Sourced by the other scripts: the example packages, and where cargo puts their binaries.
# Adding a framework to the scripts is one word here.
packages=(axum-example actix-web-example warp-example rocket-example poem-example salvo-example)

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

# Each package's default port, "package port" per line (the contract's table).
ports=("axum-example 3001" "actix-web-example 3002" "warp-example 3003" "rocket-example 3004" "poem-example 3005" "salvo-example 3006")
