//! A lean event-stream client for load: the conformance suite's raw HTTP/1.1 client
//! ([`conformance::wire::Connection`], its head parser and body decoder) or an HTTP/2 stream
//! (the `h2` crate, many on one connection), and just enough of the SSE format to check every
//! delivery (ids, names, the first data line). The conformance suite's spec-exact parser checks
//! the format; this one has to stay cheap at 19,000 streams: the body is decoded straight into
//! the event scanner's buffer.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use conformance::wire::{self, BodyDecoder, BodyEnd, Connection, Head, find};

/// Nanoseconds since this process first asked: the clock that stamps published payloads, so a
/// client computes trigger-to-delivery latency from the payload alone.
pub fn clock_ns() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// An event as this client sees it: only what the checks need.
#[derive(Debug)]
pub struct Event<'a> {
    pub id: Option<u64>,
    pub name: &'a [u8],
    /// The first `data:` line.
    pub data: &'a [u8],
}

/// How a read went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Open,
    Ended(BodyEnd),
}

/// An open `GET` whose head has arrived; events are read with [`Stream::read`].
pub struct Stream {
    source: Source,
    pub head: Head,
    /// How the body ended, once it has.
    end: Option<BodyEnd>,
    events: EventScanner,
}

/// Where the body comes from.
enum Source {
    Http1 {
        connection: Connection,
        body: BodyDecoder,
    },
    /// One stream of an HTTP/2 connection that others may share; dropping it resets the stream.
    Http2 {
        body: h2::RecvStream,
        _connection: h2::client::SendRequest<Bytes>,
    },
}

const READ_SIZE: usize = 4096;

impl Stream {
    /// Sends `GET target` with `headers` on a new connection and reads the response head
    /// (at most `timeout` for both).
    pub async fn open(
        address: SocketAddr,
        target: &str,
        headers: &[(&str, &str)],
        receive_buffer: Option<u32>,
        timeout: Duration,
    ) -> Result<Self, String> {
        tokio::time::timeout(timeout, async {
            let connection = Connection::open(address, receive_buffer).await?;
            Self::request(connection, target, headers, timeout).await
        })
        .await
        .map_err(|_| format!("GET {target}: no response head within {timeout:?}"))?
    }

    async fn request(
        mut connection: Connection,
        target: &str,
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<Self, String> {
        let mut all = Vec::with_capacity(headers.len() + 1);
        all.push(("Accept", "text/event-stream"));
        all.extend_from_slice(headers);
        let request = wire::request("GET", target, connection.address(), &all, b"");
        let sent = Instant::now();
        connection
            .send(&request)
            .await
            .map_err(|e| format!("sending GET {target}: {e}"))?;
        let head = connection
            .read_head(sent, timeout)
            .await
            .map_err(|e| format!("GET {target}: {e}"))?;
        let body =
            BodyDecoder::for_response(&head, "GET").map_err(|e| format!("GET {target}: {e}"))?;
        let mut stream = Self {
            head,
            end: body.is_complete().then_some(BodyEnd::Clean),
            source: Source::Http1 { connection, body },
            events: EventScanner::default(),
        };
        // The start of the body may have come with the head.
        stream.take_body();
        Ok(stream)
    }

    /// Sends `GET target` on the HTTP/2 connection `connection` (a stream of its own there) and
    /// reads the response head (at most `timeout`).
    pub async fn open_h2(
        connection: &h2::client::SendRequest<Bytes>,
        address: SocketAddr,
        target: &str,
        timeout: Duration,
    ) -> Result<Self, String> {
        tokio::time::timeout(timeout, async {
            let request = http::Request::get(format!("https://{address}{target}"))
                .header("accept", "text/event-stream")
                .body(())
                .map_err(|e| e.to_string())?;
            let sent = Instant::now();
            let (response, _) = wire::h2::send(connection, request, None)
                .await
                .map_err(|e| format!("GET {target}: {e}"))?;
            let (parts, body) = response.into_parts();
            let head = wire::h2::head(&parts, sent.elapsed());
            Ok(Self {
                end: body.is_end_stream().then_some(BodyEnd::Clean),
                head,
                source: Source::Http2 {
                    body,
                    _connection: connection.clone(),
                },
                events: EventScanner::default(),
            })
        })
        .await
        .map_err(|_| format!("GET {target}: no response head within {timeout:?}"))?
    }

    /// Waits for more of the body and hands every complete event to `on_event`.
    pub async fn read(&mut self, mut on_event: impl FnMut(&Event<'_>)) -> Progress {
        self.events.drain(&mut on_event);
        if let Some(end) = self.end {
            return Progress::Ended(end);
        }
        let connection = match &mut self.source {
            Source::Http1 { connection, .. } => connection,
            Source::Http2 { body, .. } => {
                let end = match body.data().await {
                    Some(Ok(data)) => {
                        let _ = body.flow_control().release_capacity(data.len());
                        self.events.pending.extend_from_slice(&data);
                        self.events.drain(&mut on_event);
                        return Progress::Open;
                    }
                    None => BodyEnd::Clean,
                    Some(Err(e)) if e.is_reset() => BodyEnd::Reset,
                    Some(Err(_)) => BodyEnd::Truncated,
                };
                self.end = Some(end);
                return Progress::Ended(end);
            }
        };
        match connection.read_more(READ_SIZE).await {
            Ok(0) => {
                let Source::Http1 { body, .. } = &self.source else {
                    unreachable!("an HTTP/1.1 stream")
                };
                let end = body.end_at_close();
                self.end = Some(end);
                Progress::Ended(end)
            }
            Ok(_) => {
                self.take_body();
                self.events.drain(&mut on_event);
                match self.end {
                    Some(end) => Progress::Ended(end),
                    None => Progress::Open,
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                Progress::Ended(BodyEnd::Reset)
            }
            Err(_) => Progress::Ended(BodyEnd::Truncated),
        }
    }

    /// Decodes what has been received straight into the event scanner; a body whose framing is
    /// broken ends there, truncated.
    fn take_body(&mut self) {
        let Source::Http1 { connection, body } = &mut self.source else {
            return;
        };
        match connection.take_body(body, &mut self.events.pending) {
            Ok(()) if body.is_complete() => self.end = Some(BodyEnd::Clean),
            Ok(()) => {}
            Err(_) => self.end = Some(BodyEnd::Truncated),
        }
    }

    /// Reads until the body ends or `timeout` passes (`None`: still open).
    pub async fn read_to_end(
        &mut self,
        timeout: Duration,
        mut on_event: impl FnMut(&Event<'_>),
    ) -> Option<BodyEnd> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.read(&mut on_event)).await {
                Ok(Progress::Open) => continue,
                Ok(Progress::Ended(end)) => return Some(end),
                Err(_) => return None,
            }
        }
    }

    /// Goes away: resets the connection (no TIME_WAIT left behind on this side), or over
    /// HTTP/2 the stream (`RST_STREAM`; the connection closes when its last stream has gone).
    pub fn abort(self) {
        match self.source {
            Source::Http1 { connection, .. } => connection.abort(),
            Source::Http2 { .. } => {}
        }
    }
}

/// Splits the decoded body into blocks at blank lines (the servers end lines with LF).
#[derive(Debug, Default)]
struct EventScanner {
    /// The decoded body not yet split into events.
    pending: Vec<u8>,
    /// Where the search for the next blank line resumes.
    scanned: usize,
}

impl EventScanner {
    /// Hands out every complete event (comment-only blocks, the heartbeats, dispatch nothing).
    fn drain(&mut self, on_event: &mut impl FnMut(&Event<'_>)) {
        let mut start = 0;
        let mut from = self.scanned.max(start);
        while let Some(offset) = find(&self.pending[from..], b"\n\n") {
            let end = from + offset;
            let block = &self.pending[start..end];
            if let Some(event) = parse_block(block) {
                on_event(&event);
            }
            start = end + 2;
            from = start;
        }
        self.pending.drain(..start);
        // A blank line may straddle the next read: look again from the last byte.
        self.scanned = self.pending.len().saturating_sub(1);
    }
}

/// The event in a block, if it has a data line (a block without one dispatches nothing).
fn parse_block(block: &[u8]) -> Option<Event<'_>> {
    let mut id = None;
    let mut name: &[u8] = b"message";
    let mut data = None;
    for line in block.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(0) => continue,
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"id" => id = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok()),
            b"event" => name = value,
            b"data" if data.is_none() => data = Some(value),
            _ => {}
        }
    }
    Some(Event {
        id,
        name,
        data: data?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_found_across_reads() {
        let body = b"retry: 10\n\n:\n\nid: 7\nevent: tick\ndata: {\"a\":1}\ndata: more\n\nid: 8\ndata:x\n\n";
        for split in 1..body.len() {
            let mut scanner = EventScanner::default();
            let mut seen = Vec::new();
            for piece in body.chunks(split) {
                scanner.pending.extend_from_slice(piece);
                scanner.drain(&mut |e: &Event<'_>| {
                    seen.push((e.id, e.name.to_vec(), e.data.to_vec()));
                });
            }
            assert_eq!(
                seen,
                vec![
                    (Some(7), b"tick".to_vec(), b"{\"a\":1}".to_vec()),
                    (Some(8), b"message".to_vec(), b"x".to_vec()),
                ],
                "split {split}"
            );
        }
    }
}
