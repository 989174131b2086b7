// Generated from each example's [package.metadata.sse-examples] by
// `SSE_EXAMPLES_BLESS=1 cargo test -p sse-core frameworks_js`; do not edit.
// Read by web-demo/index.html (inlined when a server serves the page) and e2e/harness.mjs.
const FRAMEWORKS = [
  { name: 'axum', package: 'axum-example', port: 3001 },
  { name: 'actix-web', package: 'actix-web-example', port: 3002 },
  { name: 'warp', package: 'warp-example', port: 3003 },
  { name: 'rocket', package: 'rocket-example', port: 3004 },
  { name: 'poem', package: 'poem-example', port: 3005 },
  { name: 'salvo', package: 'salvo-example', port: 3006 },
];
