//! `cargo run -p dev-cert`: writes a development certificate authority and a server certificate
//! for 127.0.0.1, ::1 and localhost, and prints how to serve and reach an example over HTTPS.

use std::path::PathBuf;

use clap::Parser;

/// Makes a development certificate authority (ca.pem) and a certificate for 127.0.0.1, ::1 and
/// localhost signed by it (cert.pem, key.pem), for serving the examples over HTTPS.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// Directory to write ca.pem, cert.pem and key.pem into (replacing them)
    #[arg(long, default_value = "target/dev-cert", value_name = "DIR")]
    out: PathBuf,
}

fn main() {
    let cli = Cli::parse();
    let made = dev_cert::make(&cli.out).unwrap_or_else(|error| {
        eprintln!("dev-cert: cannot write into {}: {error}", cli.out.display());
        std::process::exit(1)
    });
    println!(
        "wrote {} (the authority to trust), {} and {} (valid {} days for {})",
        made.ca.display(),
        made.cert.display(),
        made.key.display(),
        dev_cert::VALID_DAYS,
        dev_cert::NAMES.join(", ")
    );
    println!(
        "serve:  TLS_CERT={} TLS_KEY={} cargo run -p axum-example",
        made.cert.display(),
        made.key.display()
    );
    println!(
        "check:  curl --cacert {} https://127.0.0.1:3001/health",
        made.ca.display()
    );
}
