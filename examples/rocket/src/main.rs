//! The rocket-example process: settings, binding, the tick clock, and a graceful shutdown that
//! open streams cannot hold hostage. The routes are in `lib.rs`.

use std::collections::HashSet;
use std::net::SocketAddr;

use rocket::fairing::AdHoc;
use rocket::tokio;
use rocket_example::routes;
use sse_core::Framework;
use sse_core::server::{Startup, Unbound, announce};

#[rocket::main]
async fn main() {
    // Rocket logs every request at info (four lines); keep it to warnings and errors, as its
    // release profile does, unless RUST_LOG asks for Rocket by name. Rocket binds its own
    // listener and takes none from outside, so sse-core only checks that the port is free (a
    // port in use gets the contract's one-line answer before Rocket starts).
    let framework = sse_core::this_framework!();
    let Unbound { app, stopping } = Startup::new(framework)
        .adjust(|config| {
            if !config.log_filter.contains("rocket") {
                config.log_filter.push_str(",rocket=warn");
            }
        })
        .unbound()
        .await;

    // The contract's settings win over ROCKET_* variables and Rocket.toml. Rocket's own signal
    // handling would start only after liftoff, so sse-core's (installed above) is used instead.
    // Streams end as soon as shutdown begins (`stopping`); the grace (whole seconds, at least 1
    // or Rocket cuts connections at once) lets their last bytes out, then Rocket cuts the rest.
    let mut figment = rocket::Config::figment()
        .merge(("address", app.config.host))
        .merge(("port", app.config.port))
        .merge((
            "shutdown",
            rocket::config::Shutdown {
                ctrlc: false,
                signals: HashSet::new(),
                grace: 1,
                mercy: 0,
                ..Default::default()
            },
        ));
    // Rocket's own TLS (rustls 0.23 on ring; ALPN h2 and http/1.1 with the `http2` feature).
    if let Some(tls) = &app.config.tls {
        figment = figment
            .merge(("tls.certs", &tls.cert_path))
            .merge(("tls.key", &tls.key_path));
    }
    let rocket = routes(app.clone())
        .configure(figment)
        // Port 0 becomes a real port only when Rocket binds, just before liftoff.
        .attach(AdHoc::on_liftoff("announce", {
            let app = app.clone();
            move |rocket| {
                Box::pin(async move {
                    let config = rocket.config();
                    announce(&app, SocketAddr::new(config.address, config.port));
                })
            }
        }));
    let rocket = match rocket.ignite().await {
        Ok(rocket) => rocket,
        Err(error) => exit_with(framework, error),
    };
    // Rocket gives open responses grace + mercy and then cuts them off mid-body, and an event
    // stream never ends by itself: `stopping` has ended them all cleanly before Rocket begins.
    let shutdown = rocket.shutdown();
    tokio::spawn(async move {
        stopping.await;
        shutdown.notify();
    });

    tokio::select! {
        result = rocket.launch() => if let Err(error) = result { exit_with(framework, error) },
        () = app.shutdown_deadline() => {}
    }
}

fn exit_with(framework: Framework, error: rocket::Error) -> ! {
    eprintln!("{}: {error}", framework.package);
    std::process::exit(1)
}
