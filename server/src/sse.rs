//! `text/event-stream` response bodies: ready-made SSE frames, a `:` comment after every
//! [`KEEP_ALIVE`] of silence, and the frames of a burst written to the socket together.
//!
//! Why bursts are gathered: a provider's chunks usually arrive several to a read, but hyper's
//! client hands its response body over one frame at a time, each after a switch to the
//! upstream connection's task. Between two such frames the stream is briefly not ready, and
//! hyper writes whatever the body gave so far: one `writev` (and one wake-up of the reader) per
//! chunk, 23 syscalls for a stream of 20 chunks. [`SseBody`] holds a frame back for a few turns
//! of the scheduler ([`MAX_YIELDS`]) while the next is on its way, so a burst goes out in one
//! write. The first frame is never held (time to first token is what a streaming client waits
//! on), nor is a frame whose successor does not come within those turns.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use futures_util::Stream;
use http::{HeaderValue, header};
use tokio::time::{Instant, Sleep};

/// How long a stream may be silent before a keep-alive comment goes out, so that proxies and
/// clients with idle timeouts keep the connection (axum's `KeepAlive` default).
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The most bytes of frames gathered into one write.
const BATCH_LIMIT: usize = 16 * 1024;

/// How many scheduler turns a held frame waits for the next one: hyper's client body needs two
/// per frame (measured), one more covers a turn taken by another task.
const MAX_YIELDS: u8 = 3;

/// A `text/event-stream` response of `frames`, each a complete SSE event (see [`SseBody`]).
pub(crate) fn sse_response(frames: impl Stream<Item = Bytes> + Send + 'static) -> Response {
    let mut response = Response::new(Body::from_stream(SseBody::new(frames)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// One named SSE event, `event: <name>` then `<data>` as `data:` lines (one per line of it).
pub(crate) fn event_frame(name: &str, data: &str) -> Bytes {
    let mut frame = Vec::with_capacity(name.len() + data.len() + 16);
    frame.extend_from_slice(b"event: ");
    frame.extend_from_slice(name.as_bytes());
    frame.push(b'\n');
    for line in data.split('\n') {
        frame.extend_from_slice(b"data: ");
        frame.extend_from_slice(line.strip_suffix('\r').unwrap_or(line).as_bytes());
        frame.push(b'\n');
    }
    frame.push(b'\n');
    Bytes::from(frame)
}

/// The body stream of [`sse_response`]: frames as they come, bursts gathered, keep-alives in
/// silences.
struct SseBody<S> {
    frames: Pin<Box<S>>,
    /// Frames held back, not yet handed to hyper: the first as it came, later ones appended.
    held: Option<Bytes>,
    gathered: Vec<u8>,
    /// Turns given to the scheduler since the last frame arrived.
    yielded: u8,
    /// The first frame has gone out.
    started: bool,
    ended: bool,
    /// When something last went out; the keep-alive timer is moved on from it lazily, when it
    /// fires, so that frames cost no timer update each.
    last_sent: Instant,
    keep_alive: Pin<Box<Sleep>>,
}

impl<S: Stream<Item = Bytes>> SseBody<S> {
    fn new(frames: S) -> Self {
        SseBody {
            frames: Box::pin(frames),
            held: None,
            gathered: Vec::new(),
            yielded: 0,
            started: false,
            ended: false,
            last_sent: Instant::now(),
            keep_alive: Box::pin(tokio::time::sleep(KEEP_ALIVE)),
        }
    }

    fn held_len(&self) -> usize {
        self.held.as_ref().map_or(0, Bytes::len) + self.gathered.len()
    }

    fn hold(&mut self, frame: Bytes) {
        match &self.held {
            None if self.gathered.is_empty() => self.held = Some(frame),
            _ => {
                if let Some(first) = self.held.take() {
                    self.gathered.reserve(first.len() + frame.len());
                    self.gathered.extend_from_slice(&first);
                }
                self.gathered.extend_from_slice(&frame);
            }
        }
    }

    /// Hands over what is held (one frame as it came, or the gathered ones in one buffer).
    fn release(&mut self) -> Option<Bytes> {
        let out = match self.held.take() {
            Some(frame) => frame,
            None if self.gathered.is_empty() => return None,
            None => Bytes::from(std::mem::take(&mut self.gathered)),
        };
        self.started = true;
        self.yielded = 0;
        self.last_sent = Instant::now();
        Some(out)
    }

    /// Ready once the stream has been silent for [`KEEP_ALIVE`] since anything last went out.
    fn poll_keep_alive(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.keep_alive.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let due = self.last_sent + KEEP_ALIVE;
            let now = Instant::now();
            if now >= due {
                self.last_sent = now;
                self.keep_alive.as_mut().reset(now + KEEP_ALIVE);
                return Poll::Ready(());
            }
            self.keep_alive.as_mut().reset(due);
        }
    }
}

impl<S: Stream<Item = Bytes>> Stream for SseBody<S> {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.ended {
                return Poll::Ready(this.release().map(Ok));
            }
            match this.frames.as_mut().poll_next(cx) {
                Poll::Ready(Some(frame)) => {
                    this.hold(frame);
                    this.yielded = 0;
                    if !this.started || this.held_len() >= BATCH_LIMIT {
                        return Poll::Ready(this.release().map(Ok));
                    }
                }
                Poll::Ready(None) => this.ended = true,
                Poll::Pending if this.held_len() > 0 => {
                    if this.yielded >= MAX_YIELDS {
                        return Poll::Ready(this.release().map(Ok));
                    }
                    // Woken now, this task runs again after the tasks already woken: among
                    // them the upstream connection's, which is bringing the next frame.
                    this.yielded += 1;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Poll::Pending => {
                    if this.poll_keep_alive(cx).is_ready() {
                        return Poll::Ready(Some(Ok(Bytes::from_static(b":\n\n"))));
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use http_body_util::BodyExt;

    use super::*;

    /// A stream silent for longer than [`KEEP_ALIVE`] gets a comment, then its frames; the
    /// headers are those of an event stream.
    #[tokio::test(start_paused = true)]
    async fn a_silent_stream_gets_keep_alive_comments() {
        let frames = futures_util::stream::once(async {
            tokio::time::sleep(KEEP_ALIVE * 2 + Duration::from_secs(1)).await;
            Bytes::from_static(b"data: x\n\n")
        });
        let response = sse_response(frames);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/event-stream"
        );
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-cache");
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(&body[..], b":\n\n:\n\ndata: x\n\n");
    }

    /// Frames that keep coming do not hold off the keep-alive of a later silence: it is counted
    /// from the last frame, not from the start.
    #[tokio::test(start_paused = true)]
    async fn the_keep_alive_counts_from_the_last_frame() {
        let frames = futures_util::stream::unfold(0u32, |n| async move {
            match n {
                // Frames every 10 s for 30 s: never 15 s of silence.
                0..=2 => {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    Some((Bytes::from(format!("data: {n}\n\n")), n + 1))
                }
                // Then 20 s of silence: one comment.
                3 => {
                    tokio::time::sleep(Duration::from_secs(20)).await;
                    Some((Bytes::from_static(b"data: end\n\n"), n + 1))
                }
                _ => None,
            }
        });
        let body = axum::body::to_bytes(sse_response(frames).into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(
            &body[..],
            b"data: 0\n\ndata: 1\n\ndata: 2\n\n:\n\ndata: end\n\n"
        );
    }

    /// Frames that are each one scheduler turn behind the last (as a hyper client body hands
    /// them over) go out together after the first; the first goes out alone, at once.
    #[tokio::test]
    async fn a_burst_goes_out_in_one_write_after_the_first_frame() {
        // Each frame is ready only on the poll after the one that found it not ready, like a
        // channel fed by another task that the consumer's poll wakes.
        struct OneTurnBehind {
            frames: VecDeque<Bytes>,
            primed: bool,
        }
        impl Stream for OneTurnBehind {
            type Item = Bytes;
            fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
                if self.frames.is_empty() {
                    return Poll::Ready(None);
                }
                if std::mem::replace(&mut self.primed, false) {
                    return Poll::Ready(self.frames.pop_front());
                }
                self.primed = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
        let frames: VecDeque<Bytes> = (0..20)
            .map(|i| Bytes::from(format!("data: {i}\n\n")))
            .collect();
        let expected: Vec<u8> = frames.iter().flat_map(|f| f.to_vec()).collect();
        let mut body = sse_response(OneTurnBehind {
            frames,
            primed: false,
        })
        .into_body();
        let mut writes = Vec::new();
        while let Some(frame) = body.frame().await {
            writes.push(frame.unwrap().into_data().unwrap());
        }
        assert_eq!(writes.len(), 2, "{writes:?}");
        assert_eq!(&writes[0][..], b"data: 0\n\n");
        assert_eq!(writes.concat(), expected);
    }

    /// Frames far apart go out one by one: none waits for the next.
    #[tokio::test(start_paused = true)]
    async fn frames_far_apart_are_not_held() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
        let mut body = sse_response(tokio_stream_of(rx)).into_body();
        for i in 0..3 {
            tx.send(Bytes::from(format!("data: {i}\n\n")))
                .await
                .unwrap();
            let frame = body.frame().await.unwrap().unwrap().into_data().unwrap();
            assert_eq!(frame, Bytes::from(format!("data: {i}\n\n")));
        }
        drop(tx);
        assert!(body.frame().await.is_none());
    }

    /// A receiver as a stream.
    fn tokio_stream_of(rx: tokio::sync::mpsc::Receiver<Bytes>) -> impl Stream<Item = Bytes> {
        futures_util::stream::unfold(rx, |mut rx| async move {
            let frame = rx.recv().await?;
            Some((frame, rx))
        })
    }

    #[test]
    fn an_event_frame_has_one_data_line_per_line() {
        assert_eq!(
            &event_frame("message_start", "{\"a\":1}")[..],
            b"event: message_start\ndata: {\"a\":1}\n\n"
        );
        assert_eq!(
            &event_frame("x", "{\r\n\"a\": 1\n}")[..],
            b"event: x\ndata: {\ndata: \"a\": 1\ndata: }\n\n"
        );
    }
}
