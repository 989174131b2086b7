//! Custom events and payload encoding (contract 2.3, 4): what a client decodes must be exactly
//! what was published, and nothing else.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Checked, ensure, events, id_of, marker, pass, read_through};
use crate::parser::Event;
use crate::target::Ctx;

/// Publishes every payload under one event name with a stream open, and returns, per payload,
/// the event the stream delivered for its id.
async fn round_trip(
    ctx: &Ctx,
    name: Option<&str>,
    payloads: &[Value],
) -> Result<Vec<Event>, String> {
    let mut stream = ctx.open_stream("/events", &[]).await?;
    let mut ids = Vec::new();
    for payload in payloads {
        ids.push(ctx.publish(name, payload.clone()).await?);
    }
    let last = *ids.last().ok_or("nothing to publish")?;
    let blocks = read_through(&mut stream, last, Duration::from_secs(5)).await?;
    let received = events(&blocks);
    ids.iter()
        .zip(payloads)
        .map(|(id, payload)| {
            let event = received
                .iter()
                .find(|e| id_of(e) == Some(*id))
                .ok_or_else(|| format!("the event with id {id} (data {payload}) never arrived"))?;
            let expected_name = name.unwrap_or("message");
            ensure!(
                event.event_type == expected_name,
                "event {id} arrived as type {:?} instead of {expected_name:?}",
                event.event_type
            );
            Ok((*event).clone())
        })
        .collect()
}

/// Published text and the text a client must decode.
async fn expect_texts(ctx: &Ctx, check: &str, cases: &[(&str, &str)]) -> Checked {
    let payloads: Vec<Value> = cases.iter().map(|(sent, _)| json!(sent)).collect();
    let received = round_trip(ctx, Some(&marker(check)), &payloads).await?;
    for ((sent, expected), event) in cases.iter().zip(&received) {
        ensure!(
            event.data == *expected,
            "published {sent:?}, a client decoded {:?} (expected {expected:?})",
            event.data
        );
    }
    pass()
}

pub async fn payload_json(ctx: &Ctx) -> Checked {
    let payloads = [
        json!({"text": "héllo", "n": [1, 2.5, -3e-7, null, true, false], "nested": {"quote": "\"q\"", "nl": "a\nb\r\nc"}}),
        json!([1, "two", {"three": 3}]),
        json!(42),
        json!(-0.5),
        json!(true),
        json!(null),
    ];
    let received = round_trip(ctx, Some(&marker("json")), &payloads).await?;
    for (sent, event) in payloads.iter().zip(&received) {
        ensure!(
            !event.data.contains('\n'),
            "{sent} arrived on more than one data line: {:?}",
            event.data
        );
        let parsed: Value = serde_json::from_str(&event.data).map_err(|e| {
            format!(
                "{sent} arrived as {:?}, which is not JSON ({e})",
                event.data
            )
        })?;
        ensure!(parsed == *sent, "published {sent}, received {parsed}");
    }
    pass()
}

pub async fn payload_multiline(ctx: &Ctx) -> Checked {
    expect_texts(
        ctx,
        "multiline",
        &[
            ("a\nb", "a\nb"),
            ("a\r\nb", "a\nb"),
            ("a\rb", "a\nb"),
            ("a\n\n\nb", "a\n\n\nb"),
            ("x\r\n\r\ny\r\rz", "x\n\ny\n\nz"),
            ("trail\n", "trail\n"),
            ("\nlead", "\nlead"),
            ("\r", "\n"),
            (
                " leading space\n  two spaces",
                " leading space\n  two spaces",
            ),
            ("{\"looks\":\"like json\"}", "{\"looks\":\"like json\"}"),
        ],
    )
    .await
}

pub async fn payload_unicode(ctx: &Ctx) -> Checked {
    expect_texts(
        ctx,
        "unicode",
        &[
            ("héllo wörld", "héllo wörld"),
            ("日本語のテキスト", "日本語のテキスト"),
            ("🌍🚀 ✓", "🌍🚀 ✓"),
            (
                "\u{2028}line separators are not line breaks\u{2029}",
                "\u{2028}line separators are not line breaks\u{2029}",
            ),
            ("\u{FEFF}a BOM inside", "\u{FEFF}a BOM inside"),
            ("tab\there", "tab\there"),
            ("nul\u{0}inside", "nul\u{0}inside"),
        ],
    )
    .await
}

pub async fn payload_empty(ctx: &Ctx) -> Checked {
    expect_texts(ctx, "empty", &[("", ""), ("\n", "\n"), ("", "")]).await
}

pub async fn payload_default_name(ctx: &Ctx) -> Checked {
    let received = round_trip(ctx, None, &[json!("no name given")]).await?;
    ensure!(
        received[0].data == "no name given",
        "received {:?}",
        received[0].data
    );
    pass()
}

/// Names that try to break out of their field are refused; data that tries is split into data
/// lines and arrives as exactly one event, with the stream's state untouched.
pub async fn injection(ctx: &Ctx) -> Checked {
    for name in [
        "x\ndata: evil",
        "x\revent: evil",
        "x\r\n\r\ndata: evil",
        "x\nid: 999",
        "x y",
        "x\u{0}",
    ] {
        let answer = ctx.trigger(&json!({"event": name, "data": "evil"})).await?;
        ensure!(
            answer.status == 400,
            "event name {name:?} answered {} instead of 400",
            answer.describe()
        );
    }
    let attacks = [
        (
            "a\n\nevent: evil\nid: 999\n\ndata: x",
            "a\n\nevent: evil\nid: 999\n\ndata: x",
        ),
        ("a\rid: 999\r\rdata: x", "a\nid: 999\n\ndata: x"),
        (": comment\n\nretry: 1", ": comment\n\nretry: 1"),
        ("data: fake\n\n", "data: fake\n\n"),
        ("\r\n\r\n", "\n\n"),
    ];
    let name = marker("injection");
    let mut stream = ctx.open_stream("/events", &[]).await?;
    let mut ids = Vec::new();
    for (sent, _) in attacks {
        ids.push(ctx.publish(Some(&name), json!(sent)).await?);
    }
    let last = *ids.last().expect("published");
    let blocks = read_through(&mut stream, last, Duration::from_secs(5)).await?;
    let received: Vec<&Event> = events(&blocks)
        .into_iter()
        .filter(|e| e.event_type != "tick")
        .collect();
    ensure!(
        received.len() == attacks.len(),
        "{} attacking payloads produced {} events: {:?}",
        attacks.len(),
        received.len(),
        received
            .iter()
            .map(|e| (&e.event_type, &e.id, &e.data))
            .collect::<Vec<_>>()
    );
    for (((sent, expected), event), id) in attacks.iter().zip(&received).zip(&ids) {
        ensure!(
            event.event_type == name && id_of(event) == Some(*id) && event.data == *expected,
            "published {sent:?} as {name} id {id}; decoded type {:?} id {:?} data {:?}",
            event.event_type,
            event.id,
            event.data
        );
    }
    ensure!(
        stream.parser.reconnection_time() == Some(ctx.config().retry_ms),
        "the payload changed the reconnection time to {:?}",
        stream.parser.reconnection_time()
    );
    pass()
}
